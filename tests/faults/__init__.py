"""The fault suite (issue 15): rollbot under the failures of the systems around it.

Each test drives real processes and sims into one fault (a process killed mid-action, a
watch dropped and answered 410, Slack answering 429, Jira and PagerDuty down, the database
locked) and checks the outcome against the sims' own logs: every effect exactly once,
nothing lost, nothing half-written. Each test names the figure it measures in its
docstring and prints it (`FIGURE name=value`, shown with `-s` or in the captured output of
a failure), for the closing note.
"""
