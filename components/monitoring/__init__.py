"""Monitoring: Prometheus and Grafana with GPU (power included), capacity and burst cost dashboards."""
