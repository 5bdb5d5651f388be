"""The process's machinery: metrics, the work queue, the leader lease, the job scheduler,
the log lines (`logs`: their formats and context fields) and their redaction. Low in the
layers: the capabilities use it, it uses none of them."""

__all__: list[str] = []
