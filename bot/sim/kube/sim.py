"""``KubeSim``: the Kubernetes API server sim as tests and ``make demo`` hold it.

It is the object store (``store``) served over HTTP (``http``) by the shared
``ThreadedServer`` on loopback, plus what tests steer it with: ``fail_next``,
``hold_answers``, ``set_unreachable``, ``drop_watches`` (now, or every few seconds with
``drop_watches_every``, some of them followed by ``410 Expired``), ``expire_next_watches``,
``compact``, the recorded ``requests``, the log of every write (``changes``), and a
kubeconfig for the real clients.
"""

from __future__ import annotations

import pathlib
import threading
import warnings

import yaml

from bot.sim._server import RecordedRequest, ThreadedServer
from bot.sim.kube.http import HeldAnswers, InjectedFailures, KubeApi, protocol_for
from bot.sim.kube.schema import CrdSchema, default_crd_dir, load_crd_schemas
from bot.sim.kube.store import ObjectStore

__all__ = ["BOOKMARK_INTERVAL", "DEFAULT_TOKEN", "KubeSim"]

DEFAULT_TOKEN = "rollbot-sim-token"
BOOKMARK_INTERVAL = 1.0


class KubeSim(ObjectStore):
    """A Kubernetes API server on loopback, in its own thread with its own event loop."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        validate: bool = True,
        crd_dir: pathlib.Path | str | None = None,
        token: str = DEFAULT_TOKEN,
        require_auth: bool = True,
        bookmark_interval: float = BOOKMARK_INTERVAL,
    ) -> None:
        self.host = host
        self.port = port
        self.token = token
        self.require_auth = require_auth
        self.bookmark_interval = bookmark_interval
        # Plurals whose lists and watches across the cluster are refused with RBAC's 403,
        # as for a service account granted namespaced Roles only (per-namespace ones pass).
        self.namespaced_only: set[str] = set()
        # When a list: (User-Agent, plural, resourceVersion, time.time()) of every watch
        # event as its stream handed it on (the scale bench times rollbot from there).
        self.deliveries: list[tuple[str, str, str, float]] | None = None
        self.url = ""
        self.requests: list[RecordedRequest] = []
        self._requests_lock = threading.Lock()
        self._failures = InjectedFailures()
        self._holds = HeldAnswers()
        self._down = False
        self._server: ThreadedServer | None = None
        self._dropper: threading.Thread | None = None
        self._dropper_stop = threading.Event()
        schemas: dict[str, CrdSchema] = {}
        crd_path = pathlib.Path(crd_dir) if crd_dir is not None else default_crd_dir()
        if crd_path.is_dir() and any(crd_path.glob("*.yaml")):
            schemas = load_crd_schemas(str(crd_path.resolve()))
        elif validate:
            warnings.warn(
                f"Argo Rollouts CRDs not found in {crd_path}: schema validation is off",
                RuntimeWarning,
                stacklevel=2,
            )
        super().__init__(schemas, validate=validate)

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> KubeSim:
        api = KubeApi(self, record=self._record, failures=self._failures, holds=self._holds)
        server = ThreadedServer(
            api.app,
            host=self.host,
            port=self.port,
            name="kube-sim",
            log_config=None,
            ws="none",
            http=protocol_for(self),
            timeout_graceful_shutdown=1,
        )
        self.port = server.port
        self.url = server.url
        self._server = server
        server.start()
        return self

    def stop(self) -> None:
        self.drop_watches_every(None)
        self.close_watches()
        if self._server is not None:
            self._server.stop()
        self._server = None

    def __enter__(self) -> KubeSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def write_kubeconfig(self, path: pathlib.Path, *, namespace: str = "default") -> pathlib.Path:
        """A kubeconfig for ``kubernetes.config.load_kube_config(config_file=path)``."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "rollbot-sim", "cluster": {"server": self.url}}],
            "users": [{"name": "rollbot", "user": {"token": self.token}}],
            "contexts": [
                {
                    "name": "rollbot-sim",
                    "context": {
                        "cluster": "rollbot-sim",
                        "user": "rollbot",
                        "namespace": namespace,
                    },
                }
            ],
            "current-context": "rollbot-sim",
            "preferences": {},
        }
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    # ---------------------------------------------------------------- test controls

    def fail_next(self, n: int, *, status: int = 503, path_contains: str = "") -> None:
        self._failures.add(n, status, path_contains)

    def hold_answers(self, n: int = 1, *, method: str = "PATCH", path_contains: str = "") -> None:
        """The next `n` `method` requests whose path contains `path_contains` are applied
        (the object changes, watches see it), then their answers hang until
        `release_answers()`. A caller that goes away meanwhile never gets one (`lost_answers`
        counts it), as when a client is killed mid-request: the API server has committed
        the change all the same. To kill a process between its write and what it does with
        the answer."""
        self._holds.add(n, method, path_contains)

    def release_answers(self) -> None:
        """Answer every held request; the `hold_answers` rules left lapse."""
        self._holds.release()

    @property
    def held_answers(self) -> int:
        """How many answers are hanging now."""
        return self._holds.held

    @property
    def lost_answers(self) -> int:
        """How many held answers were never delivered: their caller went away first."""
        return self._holds.lost

    def drop_watches_every(self, seconds: float | None, *, expire_every: int | None = None) -> None:
        """Cut every open watch each ``seconds`` (real seconds, from a thread of the sim's
        own), as an API server restarting over and over does; ``None`` stops it. With
        ``expire_every=k`` every k-th round that cut a watch also expires the watches it
        cut: as many of the next watches that resume from a resourceVersion as were cut are
        answered ``410 Expired`` (``expire_next_watches``), as when the restarted server's
        watch cache starts after their resourceVersion. ``watches_dropped`` and
        ``watches_expired`` count what happened."""
        if self._dropper is not None:
            self._dropper_stop.set()
            self._dropper.join(5)
            self._dropper = None
        if seconds is None:
            return
        stop = self._dropper_stop = threading.Event()

        def run() -> None:
            rounds = 0  # the rounds that found a watch to cut
            while not stop.wait(seconds):
                with self._lock:  # no watch may open between the cut and the expiry
                    cut = self.drop_watches()
                    rounds += 1 if cut else 0
                    if cut and expire_every and rounds % expire_every == 0:
                        self.expire_next_watches(cut)

        self._dropper = threading.Thread(target=run, name="kube-sim-dropper", daemon=True)
        self._dropper.start()

    def set_unreachable(self, down: bool) -> None:
        self._down = down

    @property
    def unreachable(self) -> bool:
        return self._down

    def requests_matching(
        self, method: str | None = None, path_contains: str = ""
    ) -> list[RecordedRequest]:
        with self._requests_lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method) and path_contains in r.path
            ]

    def _record(self, request: RecordedRequest) -> None:
        with self._requests_lock:
            self.requests.append(request)
