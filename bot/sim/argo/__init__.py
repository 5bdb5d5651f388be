"""An Argo Rollouts controller simulation, driving Rollouts stored in a :class:`KubeSim`, and
an Argo CD application controller simulation (``cd``) that syncs them from Git.

It follows the real controller's observable behaviour for canary Rollouts
(``rollout/canary.go``, ``rollout/sync.go``, ``utils/conditions``, ``utils/rollout``):

* a new pod template gets a pod-template-hash (FNV-32a of the template, safe-encoded like
  ``controller.ComputeHash``), a ReplicaSet ``{rollout}-{hash}`` owned by the Rollout and the
  next ``rollout.argoproj.io/revision``; the very first revision is promoted at once, as the real
  controller skips the steps when there is no stable ReplicaSet yet;
* steps ``setWeight``, ``pause`` (``CanaryPauseStep`` pause condition, ``controllerPause``; timed
  pauses end on the injected clock) and ``analysis`` (an AnalysisRun
  ``{rollout}-{hash}-{revision}-{stepIndex}`` owned by the Rollout, Running for the metrics'
  ``interval × count``, then the scripted outcome, Successful by default);
* Failed / Error analysis aborts (``status.abort``, ``abortedAt``, Progressing=False
  ``RolloutAborted`` with ``Rollout aborted update to revision N: <run message>``, canary weight
  0); Inconclusive pauses with ``InconclusiveAnalysisRun``;
* the user's patches: abort, retry (``abort: false``), promote (clearing ``pauseConditions`` /
  ``spec.paused: false`` / moving ``currentStepIndex``), promote-full, pause (``spec.paused``);
* ``phase`` / ``message`` computed as ``CalculateRolloutPhase`` does (``Degraded`` with
  ``RolloutAborted: …`` or ``ProgressDeadlineExceeded: …``, ``Paused`` with ``manually paused``
  or the first pause reason, ``Progressing``, ``Healthy``).

Simplified: no pods (replica counts are derived from the weight), no experiments, no background
analysis, no blue-green, traffic routing is only reflected in ``status.canary.weights``.

How the package is split:

* ``canary``: durations, pod-template hashes, the steps, the revision and the canary weight;
* ``replicasets``: the ReplicaSets a Rollout owns, their scaling, the revision annotation;
* ``analysis``: the step AnalysisRuns, their timing and their scripted outcomes;
* ``status``: conditions, ``phase`` / ``message`` and writing the Rollout's status;
* ``controller``: :class:`ArgoController`, the reconcile loop and the step walk;
* ``cd``: :class:`ArgoCDSim`, Argo CD's refresh and sync of Applications from real bare
  repositories (``bot.sim.git``) to the Rollouts they hold, which the controller above then
  rolls out; ``render`` reads an Application's manifests at a commit (kustomize
  ``resources:`` and ``images:``, or plain files), ``health`` is Argo CD's Rollout health
  check.
"""

from bot.sim.argo.analysis import OUTCOMES
from bot.sim.argo.canary import (
    HASH_LABEL,
    REVISION,
    current_weight,
    parse_duration,
    pod_template_hash,
)
from bot.sim.argo.cd import ArgoCDSim
from bot.sim.argo.controller import ArgoController
from bot.sim.argo.health import rollout_health

__all__ = [
    "HASH_LABEL",
    "OUTCOMES",
    "REVISION",
    "ArgoCDSim",
    "ArgoController",
    "current_weight",
    "parse_duration",
    "pod_template_hash",
    "rollout_health",
]
