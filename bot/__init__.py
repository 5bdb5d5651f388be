"""rollbot: a ChatOps incident and rollback bot for progressive delivery on Kubernetes.

The path a signal takes, and the package that holds each step:

    watch (rollouts) or webhook (web) ─► incident (incidents) ─► card (cards, blocks)
      ─► click (slack, web) ─► responder (actions) ─► adapter (adapters) ─► verify
      ─► audit (store) ─► PagerDuty note (paging)

`core` holds the pure rules and values; `wiring` builds everything; `runtime` is the
process's machinery; `sim` holds the simulated outside world for tests and the demo.
See docs/architecture.md.
"""

__all__: list[str] = []
