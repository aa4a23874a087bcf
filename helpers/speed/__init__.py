"""Stage 04_speed: latency and throughput (timing), FLOPs and the measured matmul peak (flops)."""
