"""Configuration files as the programs themselves read them: nats-server checks its rendered
configuration, and the switchboard binary checks each pod's configuration with exactly the
environment and secret files that pod gets. Also: the Secrets and the PostgreSQL cluster."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path

from manifests import SERVICES, PodTemplate, Rendering

# Placeholder contents of Secret keys, by key name, for checking configurations.
PLACEHOLDER_SECRETS = {"url": "postgres://user:password@database:5432/switchboard"}


def check_nats_config(rendering: Rendering, nats_server: str | None) -> list[str]:
    where = rendering.overlay
    config_map = rendering.generated("ConfigMap", "switchboard-nats-config")
    statefulset = rendering.named("StatefulSet", "switchboard-nats")
    if config_map is None or statefulset is None:
        return [f"{where}: NATS needs the StatefulSet switchboard-nats and the ConfigMap switchboard-nats-config"]
    problems = []
    files = config_map["data"]
    servers = statefulset["spec"]["replicas"]
    service = statefulset["spec"]["serviceName"]
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    environment = nats_environment(container)
    # Routes are written in nats.conf, or as $VARIABLES the pod's environment defines.
    conf = re.sub(r"(?m)#.*$", "", files.get("nats.conf", ""))
    resolved = re.sub(r"\$([A-Z0-9_]+)", lambda match: environment.get(match.group(1), match.group(0)), conf)
    routes = re.findall(r"nats://(?:[^@\s]+@)?([a-z0-9.-]+):6222", resolved)
    expected = [f"{statefulset['metadata']['name']}-{index}.{service}" for index in range(servers)]
    if servers > 1 and sorted(routes) != expected:
        problems.append(f"{where}: nats.conf routes {routes} must name every server: {expected}")
    if servers == 1 and routes:
        problems.append(f"{where}: a single NATS server must not list cluster routes")
    headless = rendering.named("Service", service)
    if servers > 1 and (headless is None or headless["spec"].get("clusterIP") != "None"
                        or not headless["spec"].get("publishNotReadyAddresses")):
        problems.append(f"{where}: Service {service} must be headless and publish not-ready addresses")
    cluster = re.search(r"cluster\s*\{(.*)\}", conf, re.S)
    if servers > 1 and where == "production" and cluster is not None:
        if not re.search(r"authorization\s*\{[^}]*password", cluster.group(1)):
            problems.append(f"{where}: nats.conf's cluster must authenticate its routes (cluster.authorization)")
        elif any("@" not in route for route in re.findall(r"nats://[^\s\]]+:6222", resolved)):
            problems.append(f"{where}: every route must carry the route credentials")
        if not re.search(r"no_advertise\s*[:=]?\s*true", cluster.group(1)):
            problems.append(f"{where}: nats.conf's cluster must set no_advertise (clients use the Service)")
    if nats_server is None:
        return problems
    with tempfile.TemporaryDirectory() as directory:
        for name, text in files.items():
            Path(directory, name).write_text(text)
        completed = subprocess.run(
            [nats_server, "--config", str(Path(directory, "nats.conf")), "-t"],
            capture_output=True, text=True, cwd=directory, env={**os.environ, **environment}, check=False,
        )
    if completed.returncode != 0:
        problems.append(f"{where}: nats-server rejects its configuration: {(completed.stderr or completed.stdout).strip()}")
    return problems


def nats_environment(container: dict) -> dict[str, str]:
    """The NATS container's environment, Secrets as placeholders, `$(VAR)` references expanded as
    the kubelet expands them."""
    environment: dict[str, str] = {}
    for variable in container.get("env", []):
        value = variable.get("value", "placeholder")
        environment[variable["name"]] = re.sub(r"\$\((\w+)\)", lambda match: environment.get(match.group(1), ""), value)
    return environment


def check_switchboard_configs(rendering: Rendering, switchboard: str | None) -> list[str]:
    """`switchboard config check` for every Switchboard container, as it will run in its pod."""
    if switchboard is None:
        return []
    problems = []
    for pod in rendering.pod_templates():
        if not pod.is_switchboard:
            continue
        for container in pod.spec.get("initContainers", []) + pod.spec["containers"]:
            with tempfile.TemporaryDirectory() as root:
                environment = pod_environment(pod, container, rendering, Path(root))
                # The pod's command (`gateway`, `sms`, …, `migrate`) decides which sections it reads.
                command = container.get("args", [""])[0]
                completed = subprocess.run(
                    [switchboard, "config", "check", "--for", command], capture_output=True, text=True, check=False,
                    env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **environment},
                )
            if completed.returncode != 0:
                output = completed.stderr.strip().replace(root, "")
                problems.append(f"{rendering.overlay}: {pod.where}: switchboard config check fails:\n{output}")
    return problems


def pod_environment(pod: PodTemplate, container: dict, rendering: Rendering, root: Path) -> dict:
    """The container's files (ConfigMaps, Secrets with placeholder values) under `root`, and its
    environment with every absolute path moved under `root`."""
    volumes = {volume["name"]: volume for volume in pod.spec.get("volumes", [])}
    # Mounts of whole Secrets that are created by hand: which keys they hold is not known here.
    unknown_keys = []
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        target = root / mount["mountPath"].lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
        files = volume_files(volume, rendering)
        if files is None:
            unknown_keys.append(target)
            continue
        for relative, content in files:
            path = target / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
    environment = {}
    for variable in container.get("env", []):
        value = variable.get("value", "placeholder")
        for prefix in ("file:/", "/"):
            if value.startswith(prefix):
                value = prefix[:-1] + str(root) + "/" + value[len(prefix):]
        environment[variable["name"]] = value
    config = Path(environment.get("SWITCHBOARD_CONFIG", "/nonexistent"))
    if config.is_file():
        # Paths inside the configuration file point into the pod's mounts too.
        text = re.sub(
            r'"(file:)?/(var/run/secrets|etc/switchboard)/',
            lambda match: f'"{match.group(1) or ""}{root}/{match.group(2)}/',
            config.read_text(),
        )
        config.write_text(text)
        for reference in re.findall(r'"file:([^"]+)"', text):
            path = Path(reference)
            if any(directory in path.parents for directory in unknown_keys):
                path.write_text("placeholder")
    return environment


def volume_files(volume: dict, rendering: Rendering) -> list[tuple[str, str]] | None:
    """(path, content) of the files a volume holds; None when they are not known."""
    if "configMap" in volume:
        source = rendering.generated("ConfigMap", volume["configMap"]["name"]) or {}
        return list(source.get("data", {}).items())
    if "secret" in volume:
        return secret_files(volume["secret"]["secretName"], volume["secret"].get("items"), rendering)
    if "projected" in volume:
        files = []
        for source in volume["projected"]["sources"]:
            if "secret" in source:
                files += secret_files(source["secret"]["name"], source["secret"].get("items"), rendering) or []
        return files
    return []


def secret_files(name: str, items: list | None, rendering: Rendering) -> list[tuple[str, str]] | None:
    secret = rendering.named("Secret", name)
    values = dict((secret or {}).get("stringData", {}))
    if items is None:
        return list(values.items()) if secret is not None else None
    return [
        (item["path"], values.get(item["key"], PLACEHOLDER_SECRETS.get(item["key"], "placeholder-" + item["key"])))
        for item in items
    ]


def referenced_secrets(rendering: Rendering) -> set[str]:
    names = set()
    for pod in rendering.pod_templates():
        for volume in pod.spec.get("volumes", []):
            if "secret" in volume:
                names.add(volume["secret"]["secretName"])
            for source in volume.get("projected", {}).get("sources", []):
                if "secret" in source:
                    names.add(source["secret"]["name"])
        for container in pod.containers:
            for variable in container.get("env", []):
                reference = variable.get("valueFrom", {}).get("secretKeyRef")
                if reference:
                    names.add(reference["name"])
    for ingress in rendering.of_kind("Ingress"):
        names |= {tls["secretName"] for tls in ingress["spec"].get("tls", []) if "secretName" in tls}
    for cluster in rendering.of_kind("Cluster"):
        names |= {role["passwordSecret"]["name"] for role in cluster["spec"].get("managed", {}).get("roles", []) if "passwordSecret" in role}
        credentials = cluster["spec"].get("backup", {}).get("barmanObjectStore", {}).get("s3Credentials", {})
        names |= {reference["name"] for reference in credentials.values() if isinstance(reference, dict) and "name" in reference}
    return names


def check_secrets(rendering: Rendering, deploy_doc: Path) -> list[str]:
    """Dev ships example Secrets, marked; production ships none and documents each one."""
    where = rendering.overlay
    problems = []
    secrets = rendering.of_kind("Secret")
    if where == "production":
        if secrets:
            problems.append(f"{where}: must not contain Secrets ({[secret['metadata']['name'] for secret in secrets]})")
        documentation = deploy_doc.read_text() if deploy_doc.is_file() else ""
        for name in sorted(referenced_secrets(rendering)):
            if name not in documentation:
                problems.append(f"{where}: Secret {name} is used but {deploy_doc.name} does not say how to create it")
    else:
        for secret in secrets:
            if secret["metadata"].get("labels", {}).get("switchboard.io/example") != "true":
                problems.append(f"{where}: Secret {secret['metadata']['name']} must be labelled switchboard.io/example=true")
        rendered = {secret["metadata"]["name"] for secret in secrets}
        for name in sorted(referenced_secrets(rendering) - rendered - {"switchboard-gateway-tls"}):
            problems.append(f"{where}: Secret {name} is used but not provided")
    return problems


def check_postgres_cluster(rendering: Rendering) -> list[str]:
    """CloudNativePG: a role and a database per service, the role's password in the Secret the
    service reads its URL from."""
    where = rendering.overlay
    clusters = rendering.of_kind("Cluster")
    if not clusters:
        return []
    problems = []
    for cluster in clusters:
        spec = cluster["spec"]
        name = cluster["metadata"]["name"]
        if rendering.overlay == "production" and spec.get("instances", 1) < 3:
            problems.append(f"{where}: Cluster {name} must have at least 3 instances")
        if rendering.overlay == "production":
            synchronous = spec.get("postgresql", {}).get("synchronous", {})
            if synchronous.get("number", 0) < 1 or synchronous.get("dataDurability", "required") != "required":
                problems.append(
                    f"{where}: Cluster {name} must replicate synchronously (postgresql.synchronous, number >= 1, "
                    "dataDurability required): a failover must not lose commits whose events were acknowledged"
                )
            if not spec.get("backup"):
                problems.append(f"{where}: Cluster {name} needs a backup section (object store, retention)")
            scheduled = [backup for backup in rendering.of_kind("ScheduledBackup") if backup["spec"]["cluster"]["name"] == name]
            if not scheduled:
                problems.append(f"{where}: Cluster {name} needs a ScheduledBackup")
            if not spec.get("monitoring", {}).get("enablePodMonitor"):
                problems.append(f"{where}: Cluster {name} must export its metrics (monitoring.enablePodMonitor)")
        labels = spec.get("inheritedMetadata", {}).get("labels", {})
        if labels.get("app.kubernetes.io/component") != "database":
            problems.append(f"{where}: Cluster {name} must label its pods app.kubernetes.io/component=database")
        roles = {role["name"]: role for role in spec.get("managed", {}).get("roles", [])}
        databases = {
            database["spec"]["name"]: database for database in rendering.of_kind("Database")
            if database["spec"]["cluster"]["name"] == name
        }
        for service in SERVICES:
            role = roles.get(service)
            secret = f"switchboard-{service}-database"
            if role is None or role.get("passwordSecret", {}).get("name") != secret or not role.get("login"):
                problems.append(f"{where}: Cluster {name} needs a login role {service} with its password in {secret}")
            database = databases.get(f"switchboard_{service}")
            if database is None or database["spec"].get("owner") != service:
                problems.append(f"{where}: Cluster {name} needs a database switchboard_{service} owned by {service}")
    return problems
