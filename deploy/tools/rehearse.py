"""Runs what each overlay declares, on this machine, and fails when a pod would not become Ready
or a component could not do its job with the credentials its manifest gives it.

For every overlay: render it; generate a value for every Secret key it uses (the dev overlay's
example Secrets are used as they are); start the NATS StatefulSet's servers from its rendered
nats.conf and auth.conf (cluster routes, listen addresses and the store directory moved to
loopback ports and a temporary directory; the passwords from the Secret, as the pods' environment
gives them); create the databases and roles the overlay declares on a local PostgreSQL; then run
every Switchboard pod as the kubelet would: its init containers to completion, then its container,
each with exactly the rendered command, arguments and environment, its ConfigMaps and Secrets as
files, and its declared ports mapped to free loopback ports. Every startup, readiness and liveness
probe is executed as the kubelet sends it (HTTP GET, gRPC health with no metadata, TCP connect)
within the probe's own budget. Finally the system does its job: a delivery posted to the gateway
with the provider's token is stored, every service's consumer applies it, and nothing is
dead-lettered.

What only a real cluster shows (scheduling, volumes, DNS, NetworkPolicies, the images themselves)
is listed in docs/deploy.md."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from manifests import ADMIN_PORT, GATEWAY_PORT, GRPC_PORT, PodTemplate, Rendering, render

OVERLAYS = ("dev", "production")
NATS_STATEFULSET = "switchboard-nats"
NATS_CONFIG = "switchboard-nats-config"
# Where Switchboard listens inside a pod (docs/operations.md), and the setting that moves it.
LISTEN_SETTINGS = {
    ADMIN_PORT: "SWITCHBOARD_ADMIN__LISTEN",
    GRPC_PORT: "SWITCHBOARD_GRPC__LISTEN",
    GATEWAY_PORT: "SWITCHBOARD_GATEWAY__LISTEN",
}
# The provider's events, as subjects (tests/fixtures/events/<event>[.<variant>].json).
EVENTS = (
    "sms.message.status", "sms.unsubscription", "whatsapp.message.status", "whatsapp.message.in",
    "whatsapp.unsubscription", "rcs.message.status", "rcs.message.in", "rcs.unsubscription",
    "voice.message.out", "voice.unsubscription", "vmn.message.in", "contacts.subscriber.subscription",
)
# The NATS client Service every component's configuration names.
NATS_SERVICE_URL = re.compile(r"nats://switchboard-nats(?:\.[a-z0-9.-]+)?:4222")
# The image every Switchboard container runs, and the Dockerfile it is built from.
SWITCHBOARD_IMAGE = "ghcr.io/switchboard-dev/switchboard"
DOCKERFILE = Path(__file__).resolve().parents[1] / "docker" / "Dockerfile"


def image_environment() -> dict[str, str]:
    """The `ENV NAME=value` settings of the Dockerfile's last stage: what the image's containers start with."""
    environment: dict[str, str] = {}
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("FROM "):
            environment.clear()
        elif line.startswith("ENV "):
            for setting in line[len("ENV "):].split():
                name, _, value = setting.partition("=")
                environment[name] = value.strip('"')
    return environment


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


@dataclass
class Rehearsal:
    overlay: str
    rendering: Rendering
    switchboard: str
    nats_server: str
    postgres_admin_url: str
    root: Path
    secret_values: dict[str, dict[str, str]] = field(default_factory=dict)
    processes: list[Process] = field(default_factory=list)
    nats_urls: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cleanup_sql: list[str] = field(default_factory=list)
    run_id: str = field(default_factory=lambda: secrets.token_hex(3))

    # Secrets -----------------------------------------------------------------------------

    def secret(self, name: str, key: str) -> str:
        """The value of a Secret's key: the rendered one if the overlay ships it, else generated."""
        values = self.secret_values.setdefault(name, {})
        if key not in values:
            shipped = self.rendering.named("Secret", name)
            if shipped is not None and key in shipped.get("stringData", {}):
                values[key] = shipped["stringData"][key]
            else:
                values[key] = "rehearsal-" + secrets.token_urlsafe(18)
        return values[key]

    # NATS --------------------------------------------------------------------------------

    def start_nats(self) -> None:
        statefulset = self.rendering.named("StatefulSet", NATS_STATEFULSET)
        config_map = self.rendering.generated("ConfigMap", NATS_CONFIG)
        pod = next(template for template in self.rendering.pod_templates() if template.name == NATS_STATEFULSET)
        container = next(c for c in pod.spec["containers"] if "nats-server" in " ".join(c.get("command", [])))
        replicas = statefulset["spec"].get("replicas", 1)
        service = statefulset["spec"]["serviceName"]
        ports = [{"client": free_port(), "cluster": free_port(), "monitor": free_port()} for _ in range(replicas)]
        for index in range(replicas):
            pod_name = f"{NATS_STATEFULSET}-{index}"
            directory = self.root / pod_name
            (directory / "etc").mkdir(parents=True)
            (directory / "data").mkdir()
            text = config_map["data"]["nats.conf"]
            text = re.sub(r"listen:\s*0\.0\.0\.0:4222", f"listen: 127.0.0.1:{ports[index]['client']}", text)
            text = re.sub(r"http:\s*0\.0\.0\.0:8222", f"http: 127.0.0.1:{ports[index]['monitor']}", text)
            text = re.sub(r"listen:\s*0\.0\.0\.0:6222", f"listen: 127.0.0.1:{ports[index]['cluster']}", text)
            for peer in range(replicas):
                text = text.replace(f"nats://{NATS_STATEFULSET}-{peer}.{service}:6222", f"nats://127.0.0.1:{ports[peer]['cluster']}")
            text = re.sub(r"store_dir:\s*\S+", f"store_dir: \"{directory / 'data'}\"", text)
            text = re.sub(r"pid_file:\s*\S+", f"pid_file: \"{directory / 'nats.pid'}\"", text)
            if re.search(r"nats://[a-z0-9.-]*switchboard-nats[a-z0-9.-]*:6222", text):
                self.problems.append(f"{self.overlay}: nats.conf routes that the rehearsal cannot map to loopback")
            (directory / "etc" / "nats.conf").write_text(text)
            for name, content in config_map["data"].items():
                if name != "nats.conf":
                    (directory / "etc" / name).write_text(content)
            environment = self.container_environment(container, pod_name, pod)
            for name, value in environment.items():
                for peer in range(replicas):
                    value = value.replace(f"{NATS_STATEFULSET}-{peer}.{service}:6222", f"127.0.0.1:{ports[peer]['cluster']}")
                environment[name] = value
            command = [self.nats_server if part == "nats-server" else part for part in container["command"]]
            command = [str(directory / "etc" / "nats.conf") if part == "/etc/nats/nats.conf" else part for part in command]
            self.spawn(pod_name, command, environment, directory)
            self.nats_urls.append(f"nats://127.0.0.1:{ports[index]['client']}")
        for index in range(replicas):
            pod_name = f"{NATS_STATEFULSET}-{index}"
            mapping = {container_port["containerPort"]: ports[index][container_port["name"]]
                       for container_port in container.get("ports", []) if container_port.get("name") in ports[index]}
            self.run_probes(pod, container, pod_name, mapping)
        for sidecar in pod.spec["containers"]:
            if sidecar is not container:
                self.notes.append(f"{self.overlay}: {pod.where}: sidecar {sidecar['name']} ({sidecar.get('image')}) is not run here")

    # PostgreSQL --------------------------------------------------------------------------

    def prepare_databases(self) -> None:
        """Every service's database URL points at a database and role that exist here: the ones the
        URL names, created (with a suffix of this run, so runs never collide) on the local server."""
        admin = urlsplit(self.postgres_admin_url)
        created_roles: list[str] = []
        for service in ("sms", "chat", "voice", "interact", "contacts"):
            name = f"switchboard-{service}-database"
            clusters = self.rendering.of_kind("Cluster")
            if clusters:
                # CloudNativePG: the role is the Secret's username, the database the Database resource's.
                database = next(d["spec"]["name"] for d in self.rendering.of_kind("Database") if d["spec"]["owner"] == service)
                role = next(r for c in clusters for r in c["spec"]["managed"]["roles"] if r["name"] == service)
                user, password = role["name"], self.secret(role["passwordSecret"]["name"], "password")
            else:
                shipped = urlsplit(self.secret(name, "url"))
                user, password, database = shipped.username, shipped.password, shipped.path.lstrip("/")
            role, db = f"{user}_{self.run_id}", f"{database}_{self.run_id}"
            if role not in created_roles:
                self.psql(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
                self.psql(f"GRANT {role} TO CURRENT_USER")
                created_roles.append(role)
            self.psql(f"CREATE DATABASE {db} OWNER {role}")
            self.cleanup_sql.insert(0, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
            netloc = f"{role}:{password}@{admin.hostname}:{admin.port or 5432}"
            self.secret_values.setdefault(name, {})["url"] = urlunsplit(("postgres", netloc, f"/{db}", "", ""))
        self.cleanup_sql += [f"DROP ROLE IF EXISTS {role}" for role in created_roles]

    def psql(self, statement: str) -> None:
        completed = subprocess.run(["psql", "-v", "ON_ERROR_STOP=1", "-q", self.postgres_admin_url, "-c", statement],
                                   capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            raise RuntimeError(f"psql {statement!r}: {completed.stderr.strip()}")

    # Pods --------------------------------------------------------------------------------

    def service_links(self) -> dict[str, str]:
        """The variables the kubelet adds for every Service of the namespace unless a pod sets
        `enableServiceLinks: false` (e.g. SWITCHBOARD_GATEWAY_PORT=tcp://10.0.0.10:8080)."""
        links = {}
        for index, service in enumerate(self.rendering.of_kind("Service")):
            ports = service["spec"].get("ports", [])
            if not ports or service["spec"].get("clusterIP") == "None":
                continue
            name = service["metadata"]["name"].upper().replace("-", "_")
            address = f"10.96.0.{index + 10}"
            links[f"{name}_SERVICE_HOST"] = address
            links[f"{name}_SERVICE_PORT"] = str(ports[0]["port"])
            links[f"{name}_PORT"] = f"tcp://{address}:{ports[0]['port']}"
            for port in ports:
                prefix = f"{name}_PORT_{port['port']}_{port.get('protocol', 'TCP')}"
                links[prefix] = f"tcp://{address}:{port['port']}"
                links[f"{prefix}_PROTO"] = port.get("protocol", "TCP").lower()
                links[f"{prefix}_PORT"] = str(port["port"])
                links[f"{prefix}_ADDR"] = address
        return links

    def container_environment(self, container: dict, pod_name: str, pod: PodTemplate | None = None) -> dict[str, str]:
        environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.root)}
        # The image's own environment first (the Dockerfile's ENV), then the pod's, as a container runtime does.
        if re.split(r"[:@]", container.get("image", ""), maxsplit=1)[0] == SWITCHBOARD_IMAGE:
            environment.update(image_environment())
        if pod is not None and pod.spec.get("enableServiceLinks", True) is not False:
            environment.update(self.service_links())
        for variable in container.get("env", []):
            if "value" in variable:
                value = re.sub(r"\$\((\w+)\)", lambda match: environment.get(match.group(1), ""), variable["value"])
            else:
                source = variable.get("valueFrom", {})
                if "secretKeyRef" in source:
                    value = self.secret(source["secretKeyRef"]["name"], source["secretKeyRef"]["key"])
                elif source.get("fieldRef", {}).get("fieldPath") == "metadata.name":
                    value = pod_name
                elif "resourceFieldRef" in source:
                    value = str(self.resource_value(container, source["resourceFieldRef"]))
                else:
                    raise RuntimeError(f"{pod_name}: cannot materialise env {variable['name']}: {source}")
            environment[variable["name"]] = value
        return environment

    @staticmethod
    def resource_value(container: dict, reference: dict) -> int:
        from wiring import quantity

        resource = reference["resource"]
        section, name = resource.split(".", 1)
        value = container.get("resources", {}).get(section, {}).get(name)
        divisor = quantity(reference.get("divisor", "1"))
        return int(quantity(value) / divisor) if value is not None else 0

    def materialise_files(self, pod: PodTemplate, container: dict, directory: Path) -> None:
        """The container's volume mounts as files under `directory` (ConfigMaps and Secrets)."""
        volumes = {volume["name"]: volume for volume in pod.spec.get("volumes", [])}
        for mount in container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            target = directory / mount["mountPath"].lstrip("/")
            target.mkdir(parents=True, exist_ok=True)
            for relative, content in self.volume_files(volume):
                path = target / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(content)

    def volume_files(self, volume: dict) -> list[tuple[str, str]]:
        if "configMap" in volume:
            source = self.rendering.generated("ConfigMap", volume["configMap"]["name"]) or {}
            return list(source.get("data", {}).items())
        sources = []
        if "secret" in volume:
            sources.append((volume["secret"]["secretName"], volume["secret"].get("items")))
        for projected in volume.get("projected", {}).get("sources", []):
            if "secret" in projected:
                sources.append((projected["secret"]["name"], projected["secret"].get("items")))
        files = []
        for name, items in sources:
            if items is None:
                shipped = self.rendering.named("Secret", name)
                keys = list((shipped or {}).get("stringData", {})) or self.keys_named_in_config(name)
                items = [{"key": key, "path": key} for key in keys]
            files += [(item["path"], self.secret(name, item["key"])) for item in items]
        return files

    def keys_named_in_config(self, secret: str) -> list[str]:
        """A whole Secret mounted as a directory: the files the configuration reads from it."""
        config_map = self.rendering.generated("ConfigMap", "switchboard-config") or {"data": {}}
        text = config_map["data"].get("switchboard.toml", "")
        directory = {"switchboard-gateway-tokens": "gateway", "switchboard-grpc-tokens": "grpc"}.get(secret)
        if directory is None:
            return []
        return sorted(set(re.findall(rf"file:/var/run/secrets/switchboard/{directory}/([A-Za-z0-9._-]+)", text)))

    def run_switchboard_pod(self, pod: PodTemplate) -> dict[int, int]:
        """Runs one replica of a Switchboard pod; returns its container's port mapping."""
        pod_name = f"{pod.name}-0"
        directory = self.root / pod_name
        for init in pod.spec.get("initContainers", []):
            self.run_to_completion(pod, init, f"{pod_name}/{init['name']}", directory / init["name"])
        container = pod.spec["containers"][0]
        mapping = {port["containerPort"]: free_port() for port in container.get("ports", [])}
        process = self.start_container(pod, container, pod_name, directory / container["name"], mapping)
        if process is not None:
            self.run_probes(pod, container, pod_name, mapping)
        return mapping

    def prepared_command(self, pod: PodTemplate, container: dict, pod_name: str, directory: Path,
                         mapping: dict[int, int]) -> tuple[list[str], dict[str, str]]:
        self.materialise_files(pod, container, directory)
        environment = self.container_environment(container, pod_name, pod)
        # Paths into the pod's mounts (`file:/var/run/…`, `/etc/switchboard/…`) move under its root.
        for name, value in list(environment.items()):
            if value.startswith("file:/"):
                environment[name] = "file:" + str(directory) + value[len("file:"):]
            elif value.startswith(("/etc/", "/var/")):
                environment[name] = str(directory) + value
        config_path = environment.get("SWITCHBOARD_CONFIG")
        if config_path and Path(config_path).is_file():
            text = Path(config_path).read_text()
            text = re.sub(r'"(file:)?/(var/run/secrets|etc/switchboard)/',
                          lambda match: f'"{match.group(1) or ""}{directory}/{match.group(2)}/', text)
            text = NATS_SERVICE_URL.sub(",".join(self.nats_urls), text)
            Path(config_path).write_text(text)
        for container_port, host_port in mapping.items():
            if container_port in LISTEN_SETTINGS:
                environment[LISTEN_SETTINGS[container_port]] = f"127.0.0.1:{host_port}"
        # Where the image keeps its data: the pods mount an emptyDir or nothing there.
        environment.setdefault("SWITCHBOARD_STORAGE__DATA_DIR", str(directory / "data"))
        command = list(container.get("command", [self.switchboard]))
        if command[0] in ("switchboard", "/usr/local/bin/switchboard"):
            command[0] = self.switchboard
        return command + list(container.get("args", [])), environment

    def run_to_completion(self, pod: PodTemplate, container: dict, name: str, directory: Path) -> None:
        command, environment = self.prepared_command(pod, container, name, directory, {})
        log = directory / "log"
        started = time.monotonic()
        with log.open("w") as output:
            completed = subprocess.run(command, env=environment, stdout=output, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, timeout=300, check=False)
        if completed.returncode != 0:
            self.problems.append(f"{self.overlay}: {name} exited {completed.returncode}:\n{log.read_text()[-2000:]}")
        else:
            print(f"     {name}: completed in {time.monotonic() - started:.1f}s")

    def start_container(self, pod: PodTemplate, container: dict, pod_name: str, directory: Path,
                        mapping: dict[int, int]) -> Process | None:
        command, environment = self.prepared_command(pod, container, pod_name, directory, mapping)
        return self.spawn(pod_name, command, environment, directory)

    def spawn(self, name: str, command: list[str], environment: dict[str, str], directory: Path) -> Process:
        directory.mkdir(parents=True, exist_ok=True)
        log = directory / "log"
        popen = subprocess.Popen(command, env=environment, stdout=log.open("w"), stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, cwd=directory)
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    # Probes ------------------------------------------------------------------------------

    def run_probes(self, pod: PodTemplate, container: dict, pod_name: str, mapping: dict[int, int]) -> None:
        names = pod.container_ports()
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            probe = container.get(kind)
            if probe is None:
                continue
            delay = probe.get("initialDelaySeconds", 0)
            period = probe.get("periodSeconds", 10)
            timeout = probe.get("timeoutSeconds", 1)
            # The startup probe gets its whole budget; readiness and liveness must pass within the
            # failures they tolerate once the container has started.
            attempts = probe.get("failureThreshold", 3)
            budget = delay + period * attempts
            outcome, elapsed = self.probe_until_success(probe, names, mapping, timeout, period, budget)
            where = f"{self.overlay}: {pod.where} ({pod_name}) {container['name']}"
            if outcome is None:
                print(f"     {pod_name} {container['name']} {kind}: passed after {elapsed:.1f}s (budget {budget}s)")
            else:
                process = next((p for p in self.processes if p.name == pod_name), None)
                self.problems.append(f"{where}: {kind} failed within its {budget}s budget: {outcome}\n"
                                     f"{process.tail() if process else ''}")
                return

    def probe_until_success(self, probe: dict, names: dict[str, int], mapping: dict[int, int], timeout: float,
                            period: float, budget: float) -> tuple[str | None, float]:
        started = time.monotonic()
        last = "never tried"
        # Tried as often as every half second: faster than the kubelet, never more lenient.
        while True:
            last = self.probe_once(probe, names, mapping, timeout)
            elapsed = time.monotonic() - started
            if last is None:
                return None, elapsed
            if elapsed > budget:
                return last, elapsed
            time.sleep(min(0.5, period))

    @staticmethod
    def probe_once(probe: dict, names: dict[str, int], mapping: dict[int, int], timeout: float) -> str | None:
        for kind in ("httpGet", "grpc", "tcpSocket"):
            if kind not in probe:
                continue
            port = probe[kind].get("port")
            port = names.get(port, port)
            host_port = mapping.get(port)
            if host_port is None:
                return f"port {probe[kind].get('port')} is not a port of the container"
            if kind == "httpGet":
                scheme = probe[kind].get("scheme", "HTTP").lower()
                url = f"{scheme}://127.0.0.1:{host_port}{probe[kind].get('path', '/')}"
                try:
                    with urllib.request.urlopen(url, timeout=timeout) as response:
                        return None if 200 <= response.status < 400 else f"GET {url}: {response.status}"
                except urllib.error.HTTPError as error:
                    return f"GET {url}: {error.code} {error.read()[:300]!r}"
                except OSError as error:
                    return f"GET {url}: {error}"
            if kind == "tcpSocket":
                try:
                    with socket.create_connection(("127.0.0.1", host_port), timeout=timeout):
                        return None
                except OSError as error:
                    return f"TCP {host_port}: {error}"
            if kind == "grpc":
                return grpc_health(host_port, probe[kind].get("service", ""), timeout)
        return "no httpGet, grpc or tcpSocket handler"

    # The job -----------------------------------------------------------------------------

    def check_the_job(self, gateway_ports: dict[int, int]) -> None:
        """A delivery posted with the provider's token is stored; every service applies it (its
        consumer acknowledges everything), and nothing is dead-lettered."""
        config_map = self.rendering.generated("ConfigMap", "switchboard-config")
        text = config_map["data"]["switchboard.toml"]
        token_file = re.search(r'tokens\s*=\s*\["file:/var/run/secrets/switchboard/gateway/([^"]+)"', text)
        token = self.secret("switchboard-gateway-tokens", token_file.group(1)) if token_file else None
        repository = Path(__file__).resolve().parents[2]
        sequences = []
        for fixture in sorted((repository / "tests" / "fixtures" / "events").glob("*.json")):
            event = next(event for event in EVENTS if fixture.name.startswith(event + "."))
            request = urllib.request.Request(
                f"http://127.0.0.1:{gateway_ports[GATEWAY_PORT]}/v1/events/{event}",
                data=fixture.read_bytes(), method="POST",
                headers={"content-type": "application/json", **({"authorization": f"Bearer {token}"} if token else {})},
            )
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    sequences.append(json.loads(response.read())["seq"])
            except urllib.error.HTTPError as error:
                self.problems.append(f"{self.overlay}: the gateway refused {fixture.name}: {error.code} {error.read()[:300]!r}")
                return
        print(f"     gateway: {len(sequences)} deliveries stored (last stream sequence {max(sequences)})")
        operator = self.secret("switchboard-nats-users", "operator")
        outcome = asyncio.run(wait_consumed(self.nats_urls, "operator", operator, max(sequences)))
        if outcome:
            self.problems.append(f"{self.overlay}: {outcome}")
            return
        print("     every service's consumer applied every delivery; nothing dead-lettered")
        subscriber = self.secret("switchboard-nats-users", "subscriber")
        outcome = asyncio.run(subscriber_reads(self.nats_urls, "subscriber", subscriber, len(sequences)))
        if outcome:
            self.problems.append(f"{self.overlay}: the subscriber cannot read the stream: {outcome}")
        else:
            print(f"     the subscriber read all {len(sequences)} stored events back")

    # Running it --------------------------------------------------------------------------

    def run(self) -> None:
        print(f"---- {self.overlay}")
        self.start_nats()
        if self.problems:
            return
        self.prepare_databases()
        gateway_ports: dict[int, int] = {}
        for pod in self.rendering.pod_templates():
            if not pod.is_switchboard or pod.kind in ("Job", "CronJob"):
                continue
            mapping = self.run_switchboard_pod(pod)
            if pod.component == "gateway":
                gateway_ports = mapping
            if self.problems:
                return
        for pod in self.rendering.pod_templates():
            if pod.kind in ("Job", "CronJob"):
                self.problems.append(f"{self.overlay}: {pod.where}: Jobs are not rehearsed; run their work in init containers")
        self.check_the_job(gateway_ports)

    def close(self) -> None:
        # The components first, all at once (each drains for shutdown.drain_delay), then NATS.
        for group in ([p for p in self.processes if not p.name.startswith(NATS_STATEFULSET)],
                      [p for p in self.processes if p.name.startswith(NATS_STATEFULSET)]):
            for process in group:
                if process.popen.poll() is None:
                    process.popen.send_signal(signal.SIGTERM)
            for process in group:
                process.stop()
                if not process.name.startswith(NATS_STATEFULSET) and process.popen.returncode != 0:
                    self.problems.append(f"{self.overlay}: {process.name} exited {process.popen.returncode} "
                                         f"on SIGTERM:\n{process.tail()}")
        for statement in self.cleanup_sql:
            try:
                self.psql(statement)
            except RuntimeError as error:
                print(f"     cleanup: {error}")


def grpc_health(port: int, service: str, timeout: float) -> str | None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as error:
            return f"gRPC health on {port}: {error.code().name} {error.details()}"
    return None if answer.status == health_pb2.HealthCheckResponse.SERVING else f"gRPC health: {answer.status}"


async def wait_consumed(urls: list[str], user: str, password: str, sequence: int) -> str | None:
    import nats

    client = await nats.connect(servers=urls, user=user, password=password, connect_timeout=5)
    try:
        jetstream = client.jetstream()
        deadline = time.monotonic() + 60
        while True:
            consumers = await jetstream.consumers_info("SWITCHBOARD")
            # Every delivery was stored (at or below `sequence`) before this looks: a consumer
            # with nothing pending and nothing unacknowledged has applied all of its own.
            behind = {c.name: {"pending": c.num_pending, "unacknowledged": c.num_ack_pending}
                      for c in consumers if c.num_pending or c.num_ack_pending}
            names = {c.name for c in consumers}
            expected = {"sms", "chat-whatsapp", "chat-rcs", "voice", "interact", "contacts"}
            if not behind and expected <= names:
                break
            if time.monotonic() > deadline:
                return f"consumers behind after 60s: {behind}, missing: {sorted(expected - names)}"
            await asyncio.sleep(0.5)
        dead = (await jetstream.stream_info("SWITCHBOARD_DLQ")).state.messages
        return f"{dead} dead letters" if dead else None
    finally:
        await client.close()


async def subscriber_reads(urls: list[str], user: str, password: str, count: int) -> str | None:
    """Other systems read what was stored, as docs/security.md shows: the stream's info and each
    stored message by sequence, through the API prefix the subscribers' account imports."""
    import nats

    client = await nats.connect(servers=urls, user=user, password=password, connect_timeout=5,
                                inbox_prefix=b"_INBOX.subscriber")
    try:
        jetstream = client.jetstream(prefix="$JS.SWITCHBOARD.API")
        info = await jetstream.stream_info("SWITCHBOARD")
        if info.state.messages < count:
            return f"the stream holds {info.state.messages} events, {count} were stored"
        for sequence in range(info.state.first_seq, info.state.first_seq + count):
            message = await jetstream.get_msg("SWITCHBOARD", seq=sequence)
            if not message.data:
                return f"event {sequence} has no body"
        return None
    except Exception as error:  # the answer is what the check reports
        return f"{type(error).__name__}: {error}"
    finally:
        await client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kubectl", required=True)
    parser.add_argument("--switchboard", required=True)
    parser.add_argument("--nats-server", required=True)
    parser.add_argument("--postgres-admin-url", required=True)
    parser.add_argument("--overlay", action="append", choices=OVERLAYS)
    arguments = parser.parse_args()
    k8s = Path(__file__).resolve().parents[1] / "k8s"
    failed = 0
    for overlay in arguments.overlay or OVERLAYS:
        rendering = render(arguments.kubectl, k8s / "overlays" / overlay)
        with tempfile.TemporaryDirectory(prefix=f"switchboard-rehearse-{overlay}-") as root:
            rehearsal = Rehearsal(overlay, rendering, arguments.switchboard, arguments.nats_server,
                                  arguments.postgres_admin_url, Path(root))
            started = time.monotonic()
            try:
                rehearsal.run()
            except Exception as error:  # a rehearsal that cannot run has failed
                rehearsal.problems.append(f"{overlay}: {type(error).__name__}: {error}")
            finally:
                rehearsal.close()
            for note in rehearsal.notes:
                print(f"     note: {note}")
            if rehearsal.problems:
                failed += 1
                print(f"FAIL {overlay}: rehearsed in {time.monotonic() - started:.1f}s")
                for problem in rehearsal.problems:
                    print(f"     {problem}")
            else:
                print(f"ok   {overlay}: every pod ready, every probe passed, the system did its job "
                      f"({time.monotonic() - started:.1f}s)")
    print(f"{len(arguments.overlay or OVERLAYS) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
