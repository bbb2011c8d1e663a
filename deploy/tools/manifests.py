"""The rendered manifests of one overlay, and the facts about Switchboard they must agree with."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

# Every component of the binary that runs as a Deployment, and the gRPC services among them.
GATEWAY = "gateway"
SERVICES = ("sms", "chat", "voice", "interact", "contacts")
COMPONENTS = (GATEWAY, *SERVICES)

# Ports of every Switchboard component (docs/operations.md).
GATEWAY_PORT = 8080
GRPC_PORT = 50051
ADMIN_PORT = 9090

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob")
# Workloads that run to completion: they have no probes to answer.
BATCH_KINDS = ("Job", "CronJob")


@dataclass
class PodTemplate:
    """A pod as one workload runs it."""

    kind: str
    name: str
    namespace: str
    spec: dict
    labels: dict
    replicas: int | None

    @property
    def where(self) -> str:
        return f"{self.kind}/{self.name}"

    @property
    def containers(self) -> list[dict]:
        return list(self.spec.get("initContainers", [])) + list(self.spec.get("containers", []))

    @property
    def component(self) -> str | None:
        return self.labels.get("app.kubernetes.io/component")

    @property
    def is_switchboard(self) -> bool:
        return self.labels.get("app.kubernetes.io/name") == "switchboard"

    def container_ports(self) -> dict[str, int]:
        """Named container ports → numbers."""
        ports = {}
        for container in self.containers:
            for port in container.get("ports", []):
                if "name" in port:
                    ports[port["name"]] = port["containerPort"]
        return ports


@dataclass
class Rendering:
    """Every document `kubectl kustomize` produced for one overlay."""

    overlay: str
    documents: list[dict] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[dict]:
        return [document for document in self.documents if document.get("kind") == kind]

    def named(self, kind: str, name: str) -> dict | None:
        for document in self.of_kind(kind):
            if document["metadata"]["name"] == name:
                return document
        return None

    def generated(self, kind: str, name: str) -> dict | None:
        """A generated object (ConfigMap, Secret) by its name without the content hash."""
        for document in self.of_kind(kind):
            actual = document["metadata"]["name"]
            if actual == name or re.fullmatch(re.escape(name) + r"-[a-z0-9]{10}", actual):
                return document
        return None

    def is_generated_name(self, name: str) -> bool:
        """Whether `name` is a generated ConfigMap's or Secret's (it carries a content hash)."""
        return re.fullmatch(r".+-[a-z0-9]{10}", name) is not None and any(
            document["metadata"]["name"] == name for kind in ("ConfigMap", "Secret") for document in self.of_kind(kind)
        )

    @property
    def namespace(self) -> str:
        namespaces = {document["metadata"].get("namespace") for document in self.documents}
        namespaces.discard(None)
        if len(namespaces) != 1:
            raise ValueError(f"{self.overlay}: expected one namespace, found {sorted(namespaces)}")
        return namespaces.pop()

    def pod_templates(self) -> list[PodTemplate]:
        templates = []
        for document in self.documents:
            kind = document.get("kind")
            if kind not in WORKLOAD_KINDS:
                continue
            spec = document["spec"]
            if kind == "CronJob":
                template = spec["jobTemplate"]["spec"]["template"]
            else:
                template = spec["template"]
            templates.append(
                PodTemplate(
                    kind=kind,
                    name=document["metadata"]["name"],
                    namespace=document["metadata"].get("namespace", ""),
                    spec=template["spec"],
                    labels=template.get("metadata", {}).get("labels", {}),
                    replicas=spec.get("replicas") if kind in ("Deployment", "StatefulSet") else None,
                )
            )
        return templates

    def deployment_of(self, component: str) -> PodTemplate | None:
        for template in self.pod_templates():
            if template.kind == "Deployment" and template.is_switchboard and template.component == component:
                return template
        return None


def render(kubectl: str, overlay_dir: Path) -> Rendering:
    completed = subprocess.run(
        [kubectl, "kustomize", str(overlay_dir)], check=False, capture_output=True, text=True
    )
    if completed.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {overlay_dir} failed:\n{completed.stderr}")
    documents = [document for document in yaml.safe_load_all(completed.stdout) if document]
    return Rendering(overlay=overlay_dir.name, documents=documents)


def parse_duration(text: str) -> float:
    """Seconds in a Switchboard duration ("250ms", "5s", "2m", "7d")."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*", text)
    if not match:
        raise ValueError(f"not a duration: {text!r}")
    value, unit = float(match.group(1)), match.group(2)
    return value * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
