"""The GPU benchmark of the article, rebuilt: speed, energy efficiency and cost per GPU model.

`python -m benchmarks.gpu.run` times two training programs (an image CNN and a character-level
CNN, the article's `train.py` and `char_cnn.py` in spirit) on one device, samples the board's
power through NVML during the timed part and appends one JSON line per workload.
`python -m benchmarks.gpu.report` turns those lines into the article's three charts and a table.
`benchmarks.gpu.job` builds the Kubernetes Job that runs the payload on a node of one GPU model.
"""
