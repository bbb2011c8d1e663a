"""Whether the objects fit together the way Kubernetes will wire them: selectors that select, ports
that exist, budgets that allow a drain, storage that holds what NATS may write, resources a
scheduler can grant, TLS where the public reaches in."""

from __future__ import annotations

import re

from manifests import Rendering

UNITS = {
    "": 1, "k": 1000, "K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4,
    "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4,
    "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4,
}


def quantity(text: str | int | float) -> float:
    """A Kubernetes quantity (`512Mi`, `500m`, `2`) or a NATS size (`16GB`), as a number."""
    if isinstance(text, (int, float)):
        return float(text)
    match = re.fullmatch(r"([0-9.]+)(m|[kKMGT]i?|[KMGT]B)?", str(text).strip())
    if match is None:
        raise ValueError(f"not a quantity: {text!r}")
    number, unit = float(match.group(1)), match.group(2) or ""
    if unit == "m":
        return number / 1000
    return number * UNITS[unit]


def selects(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def check_wiring(rendering: Rendering) -> list[str]:
    where = rendering.overlay
    problems = []
    pods = rendering.pod_templates()

    # A workload's selector must match its own pod template, or the API server refuses it.
    for document in rendering.documents:
        if document.get("kind") in ("Deployment", "StatefulSet", "ReplicaSet"):
            selector = document["spec"].get("selector", {}).get("matchLabels", {})
            labels = document["spec"]["template"].get("metadata", {}).get("labels", {})
            if not selects(selector, labels):
                problems.append(f"{where}: {document['kind']}/{document['metadata']['name']}: its selector does not match its pod labels")

    # Every Service selects pods, and each targetPort is a port those pods declare.
    for service in rendering.of_kind("Service"):
        name = service["metadata"]["name"]
        selector = service["spec"].get("selector")
        if not selector:
            continue
        chosen = [pod for pod in pods if selects(selector, pod.labels)]
        if not chosen:
            problems.append(f"{where}: Service/{name} selects no pod")
            continue
        for port in service["spec"].get("ports", []):
            target = port.get("targetPort", port["port"])
            for pod in chosen:
                declared = pod.container_ports()
                if target not in declared and target not in declared.values():
                    problems.append(f"{where}: Service/{name}: targetPort {target} is not a port of {pod.where}")

    # A PodDisruptionBudget selects pods, and lets at least one go (or no node drains).
    for budget in rendering.of_kind("PodDisruptionBudget"):
        name = budget["metadata"]["name"]
        selector = budget["spec"].get("selector", {}).get("matchLabels", {})
        chosen = [pod for pod in pods if selects(selector, pod.labels)]
        if not chosen:
            problems.append(f"{where}: PodDisruptionBudget/{name} selects no pod")
            continue
        replicas = sum(pod.replicas or 1 for pod in chosen)
        max_unavailable = budget["spec"].get("maxUnavailable")
        min_available = budget["spec"].get("minAvailable")
        if max_unavailable is not None and str(max_unavailable) in ("0", "0%"):
            problems.append(f"{where}: PodDisruptionBudget/{name} allows no disruption: nodes could never be drained")
        if isinstance(min_available, int) and min_available >= replicas:
            problems.append(f"{where}: PodDisruptionBudget/{name}: minAvailable {min_available} of {replicas} pods allows no disruption")

    # Requests the limits can hold.
    for pod in pods:
        for container in pod.containers:
            resources = container.get("resources", {})
            for resource in ("cpu", "memory"):
                request = resources.get("requests", {}).get(resource)
                limit = resources.get("limits", {}).get(resource)
                if request is not None and limit is not None and quantity(request) > quantity(limit):
                    problems.append(f"{where}: {pod.where}: container {container['name']}: {resource} request {request} above its limit {limit}")

    # The public way in is encrypted in production.
    if where == "production":
        for ingress in rendering.of_kind("Ingress"):
            hosts = {host for rule in ingress["spec"].get("rules", []) for host in [rule.get("host")] if host}
            covered = {host for tls in ingress["spec"].get("tls", []) for host in tls.get("hosts", [])}
            if not ingress["spec"].get("tls") or not hosts <= covered:
                problems.append(f"{where}: Ingress/{ingress['metadata']['name']} must serve every host over TLS")

    problems += nats_storage_problems(rendering)
    return problems


def nats_storage_problems(rendering: Rendering) -> list[str]:
    """JetStream is on, on a persistent volume, and may not write more than the volume holds."""
    where = rendering.overlay
    config_map = rendering.generated("ConfigMap", "switchboard-nats-config")
    statefulset = rendering.named("StatefulSet", "switchboard-nats")
    if config_map is None or statefulset is None:
        return []
    text = re.sub(r"(?m)#.*$", "", config_map["data"].get("nats.conf", ""))
    block = re.search(r"jetstream\s*[:=]?\s*\{([^}]*)\}", text)
    if block is None:
        return [f"{where}: nats.conf has no jetstream block: the streams could not be created"]
    problems = []
    store_dir = re.search(r"store_dir\s*[:=]?\s*\"?([^\s\"]+)", block.group(1))
    if store_dir is None:
        return [f"{where}: nats.conf's jetstream block must set store_dir on the data volume"]
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    mounts = [mount for mount in container.get("volumeMounts", []) if store_dir.group(1).startswith(mount["mountPath"])]
    mount = max(mounts, key=lambda mount: len(mount["mountPath"]), default=None)
    claims = {claim["metadata"]["name"]: claim for claim in statefulset["spec"].get("volumeClaimTemplates", [])}
    if mount is None or mount["name"] not in claims:
        return [f"{where}: JetStream's store_dir {store_dir.group(1)} must be on a volumeClaimTemplate, not emptyDir or the image"]
    size = claims[mount["name"]]["spec"]["resources"]["requests"]["storage"]
    limit = re.search(r"max_file_store\s*[:=]?\s*\"?([0-9.]+\s*[A-Za-z]*)", block.group(1))
    if limit is None:
        problems.append(f"{where}: nats.conf must bound max_file_store below the volume ({size})")
    elif quantity(limit.group(1).replace(" ", "")) > quantity(size):
        problems.append(f"{where}: max_file_store {limit.group(1)} is above the data volume's {size}: the disk fills before NATS refuses writes")
    return problems
