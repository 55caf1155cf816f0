"""Prometheus metrics shared by the stages (served when NEWSWATCH_METRICS_PORT is set)."""

from prometheus_client import Counter, Histogram, start_http_server

MESSAGES = Counter(
    "newswatch_messages_total", "Messages handled by a stage, by outcome", ["stage", "outcome"]
)
STAGE_SECONDS = Histogram("newswatch_batch_seconds", "Time to process one batch", ["stage"])


def serve_metrics(port: int) -> None:
    """Expose /metrics on 127.0.0.1 (compose maps it where needed); 0 disables."""
    if port:
        start_http_server(port, addr="0.0.0.0")
