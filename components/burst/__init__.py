"""AWS spot GPU burst: VPC and WireGuard link, the spot group, autoscaler, termination handler, budget."""
