"""The watcher's Kubernetes I/O: list, then watch workflows and pods, feeding the engine.

The official ``kubernetes`` client is imported here only. A dropped watch resumes from the last
``resourceVersion`` seen; ``410 Gone`` relists and lets :class:`~control_room.watch.engine.WatchEngine`
diff against what it knows, so no transition is reported twice.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from control_room.watch.engine import Obj, WatchEngine, metadata_of
from steps.core.contract import Observation, RunEvent

log = logging.getLogger("headrace.watch")


#: Argo's Workflow resource, as the custom-objects API names it.
GROUP, VERSION, PLURAL = "argoproj.io", "v1alpha1", "workflows"


class Watcher:
    """Watches workflows and pods in ``namespace`` and hands every new event to ``notifier``.

    ``api_client`` is a ``kubernetes.client.ApiClient``; without one the in-cluster configuration
    is used, else the local kubeconfig.
    """

    def __init__(
        self,
        notifier: Callable[[RunEvent], None],
        namespace: str,
        *,
        api_client: Any = None,
        ui_url: str = "",
        pending_seconds: float = 600.0,
        watch_timeout_seconds: int = 300,
        retry_delay: float = 1.0,
        observer: Callable[[Observation], None] | None = None,
    ) -> None:
        self.notifier = notifier
        self.observer = observer if observer is not None else getattr(notifier, "observe", None)
        self.namespace = namespace
        self.api_client = api_client if api_client is not None else _default_api_client()
        self.engine = WatchEngine(ui_url=ui_url, namespace=namespace, pending_seconds=pending_seconds)
        self.watch_timeout_seconds = watch_timeout_seconds
        self.retry_delay = retry_delay
        self.stop_event = threading.Event()
        self.synced = {"workflow": threading.Event(), "pod": threading.Event()}
        self._threads: list[threading.Thread] = []
        self._responses: dict[str, Any] = {}

    # -- the two resources, through the official client
    def _list(self, kind: str) -> tuple[list[dict[str, Any]], str]:
        from kubernetes import client

        if kind == "workflow":
            raw = client.CustomObjectsApi(self.api_client).list_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, _preload_content=False
            )
        else:
            raw = client.CoreV1Api(self.api_client).list_namespaced_pod(self.namespace, _preload_content=False)
        try:
            body = json.loads(raw.data)
        finally:
            raw.release_conn()
        return list(body.get("items") or []), str((body.get("metadata") or {}).get("resourceVersion") or "")

    def _stream(self, kind: str, resource_version: str) -> Iterator[dict[str, Any]]:
        """One watch request from ``resource_version``: its events as dicts, until the server ends it.

        Raw lines rather than ``kubernetes.watch.Watch``'s models: one pod the client's models
        reject (a field they consider required) must not wedge the watch, and Watch turns an
        ``ERROR`` event into a ``KeyError`` when not deserializing.
        """
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException
        from kubernetes.watch.watch import iter_resp_lines

        kwargs: dict[str, Any] = {
            "watch": True,
            "resource_version": resource_version,
            "timeout_seconds": self.watch_timeout_seconds,
            "allow_watch_bookmarks": True,
            "_preload_content": False,
        }
        if kind == "workflow":
            api = client.CustomObjectsApi(self.api_client)
            response = api.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, **kwargs)
        else:
            response = client.CoreV1Api(self.api_client).list_namespaced_pod(self.namespace, **kwargs)
        self._responses[kind] = response
        try:
            for line in iter_resp_lines(response):
                if not line.strip():
                    continue
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object") or {}
                    raise ApiException(status=int(status.get("code") or 500), reason=str(status.get("message") or ""))
                yield event
        finally:
            self._responses.pop(kind, None)
            response.release_conn()

    def _emit(self, events: list[RunEvent]) -> None:
        for event in events:
            try:
                self.notifier(event)
            except Exception as error:  # a notifier problem must not stop the watch
                log.warning("watch: notifier failed on %s of %s: %s", event.kind.value, event.run_id, error)

    def _apply(self, kind: str, event_type: str, obj: Obj) -> None:
        events, found = self.engine.apply_all(kind, event_type, obj)
        self._emit(events)
        for observation in found:
            if self.observer is None:
                break
            try:
                self.observer(observation)
            except Exception as error:
                log.warning("watch: could not record the OOM of %s/%s: %s", observation.run_id, observation.task, error)

    def _relist(self, kind: str, first: bool) -> str:
        items, resource_version = self._list(kind)
        names = {str(metadata_of(item).get("name")) for item in items}
        self.engine.forget_missing(kind, names)
        for item in items:
            if first:
                self.engine.seed(kind, item)
            else:
                self._apply(kind, "MODIFIED", item)
        log.info("watch: listed %d %ss in %s at resourceVersion %s", len(items), kind, self.namespace, resource_version)
        return resource_version

    def watch_loop(self, kind: str) -> None:
        """List, then watch from the list's version; resume after drops, relist after 410 Gone."""
        from kubernetes.client.exceptions import ApiException

        resource_version = ""
        first = True
        just_listed = False
        while not self.stop_event.is_set():
            try:
                just_listed = not resource_version
                if just_listed:
                    resource_version = self._relist(kind, first)
                    first = False
                    self.synced[kind].set()
                for event in self._stream(kind, resource_version):
                    if self.stop_event.is_set():
                        break
                    obj = event.get("object") or {}
                    resource_version = str(metadata_of(obj).get("resourceVersion") or resource_version)
                    if event.get("type") == "BOOKMARK":
                        continue
                    try:
                        self._apply(kind, str(event.get("type") or ""), obj)
                    except Exception as error:  # one odd object must not stop the watch
                        log.warning("watch: skipped a %s event (%s)", kind, error)
            except ApiException as error:
                if error.status == 410:
                    log.info("watch: %ss at resourceVersion %s are gone (410); relisting", kind, resource_version)
                    resource_version = ""
                    if just_listed:  # gone straight after a list: do not spin on the API server
                        self.stop_event.wait(self.retry_delay)
                    continue
                log.warning("watch: %ss in %s: HTTP %s %s; retrying", kind, self.namespace, error.status, error.reason)
                self.stop_event.wait(self.retry_delay)
            except Exception as error:  # dropped connection, API server restarting: resume from the version
                if self.stop_event.is_set():
                    break
                log.info("watch: %s stream dropped (%s); resuming at resourceVersion %s", kind, error, resource_version)
                self.stop_event.wait(self.retry_delay)

    def pending_loop(self, interval: float) -> None:
        while not self.stop_event.wait(interval):
            self._emit(self.engine.check_pending(time.time()))

    def start(self, pending_interval: float = 30.0) -> None:
        """Start the workflow watch, the pod watch and the never-started check in daemon threads."""
        targets: list[tuple[str, Callable[[], None]]] = [
            ("workflow", lambda: self.watch_loop("workflow")),
            ("pod", lambda: self.watch_loop("pod")),
            ("pending", lambda: self.pending_loop(pending_interval)),
        ]
        for name, target in targets:
            thread = threading.Thread(target=target, name=f"headrace-watch-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        self.stop_event.set()
        for response in list(self._responses.values()):  # unblock reads of open streams now
            shutdown = getattr(response, "shutdown", None)
            if callable(shutdown):
                shutdown()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []


def _default_api_client() -> Any:
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        import os

        try:
            # An explicit path: the client's default is KUBECONFIG as it was at its first import.
            config.load_kube_config(config_file=os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config"))
        except Exception as error:
            from steps.core.errors import ConfigError

            raise ConfigError(
                f"watch: no Kubernetes configuration ({error}); run inside the cluster or set KUBECONFIG"
            ) from error
    return client.ApiClient()


def run_watcher(
    settings: Any,
    namespace: str | None,
    notifier: Callable[[RunEvent], None],
    *,
    api_client: Any = None,
    stop: threading.Event | None = None,
) -> None:
    """Watch ``namespace`` (default: ``settings.argo_namespace``) until ``stop`` is set (or forever).

    The entry point for the control room Deployment: ``notifier`` is the control room's
    :class:`~control_room.notifications.notifier.Notifier` (or a function storing the event and notifying).
    """
    pending = settings.watch_pending_seconds
    watcher = Watcher(
        notifier,
        namespace or settings.argo_namespace,
        api_client=api_client,
        ui_url=settings.argo_ui_url,
        pending_seconds=pending,
    )
    watcher.start()
    try:
        (stop or threading.Event()).wait()
    finally:
        watcher.stop()
