"""Alerts, scrape configuration and the dashboard: well-formed PromQL over metrics that exist."""

from __future__ import annotations

import json
import re
from pathlib import Path

import promql_parser

from manifests import Rendering

# Metrics of other exporters that the rules and the dashboard use.
NATS_EXPORTER_METRICS = {
    "jetstream_consumer_num_pending",
    "jetstream_consumer_num_ack_pending",
    "jetstream_consumer_ack_floor_stream_seq",
    "jetstream_stream_total_messages",
    "jetstream_server_total_message_bytes",
    "jetstream_server_max_storage",
}
KUBE_STATE_METRICS = {"kube_pod_status_ready", "kube_deployment_status_replicas_available"}
PROMETHEUS_METRICS = {"up"}

# What the alerts must watch (docs/operations.md): metric → why.
REQUIRED_ALERT_METRICS = {
    "switchboard_gateway_requests_total": "the gateway's 5xx rate",
    "switchboard_gateway_publish_seconds_bucket": "JetStream publish latency",
    "jetstream_consumer_num_pending": "consumer lag",
    "switchboard_dead_letters_total": "dead-letter growth",
    "kube_pod_status_ready": "pods not ready",
}
REQUIRED_DASHBOARD_METRICS = {
    "switchboard_gateway_requests_total",
    "switchboard_gateway_request_seconds_bucket",
    "switchboard_gateway_publish_seconds_bucket",
    "switchboard_consumer_events_total",
    "switchboard_consumer_batch_seconds_bucket",
    "switchboard_dead_letters_total",
    "jetstream_consumer_num_pending",
}

METRIC_CALL = re.compile(r'metrics::(counter|gauge|histogram)!\(\s*"([a-z_]+)"')
# Histograms whose name ends in _seconds have buckets (crates/runtime/src/telemetry.rs); others are
# summaries.
BUCKETED_SUFFIX = "_seconds"


def switchboard_metrics(repository: Path) -> set[str]:
    """Every series name the Rust code can export, read from its metrics::… calls."""
    names = set()
    for source in (repository / "crates").rglob("*.rs"):
        for kind, name in METRIC_CALL.findall(source.read_text()):
            names.add(name)
            if kind == "histogram":
                names |= {f"{name}_sum", f"{name}_count"}
                if name.endswith(BUCKETED_SUFFIX):
                    names.add(f"{name}_bucket")
    return names


GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def normalize(expression: str) -> str:
    """Grafana's variables replaced by plain values, so the expression is PromQL."""
    for variable, value in GRAFANA_VARIABLES.items():
        expression = expression.replace(variable, value)
    return re.sub(r"\$\{?[a-z_]+\}?", "x", expression)


def metric_names(expression: str) -> set[str]:
    """Series names in an expression: snake_case words that are not functions, keywords or labels."""
    without_strings = re.sub(r'"[^"]*"', '""', normalize(expression))
    without_labels = re.sub(r"\{[^}]*\}", "{}", without_strings)
    without_groupings = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", without_labels)
    words = set(re.findall(r"\b[a-z_][a-z0-9_]*\b", without_groupings))
    calls = set(re.findall(r"\b([a-z_][a-z0-9_]*)\s*\(", without_groupings))
    keywords = {"and", "or", "unless", "offset", "bool", "by", "without", "on", "ignoring", "group_left", "group_right", "le"}
    durations = set(re.findall(r"\b\d+[smhdwy]\b", without_groupings))
    return {word for word in words - calls - keywords - durations if "_" in word or word == "up"}


def parse(expression: str, where: str) -> list[str]:
    try:
        promql_parser.parse(normalize(expression))
    except ValueError as error:
        return [f"{where}: not valid PromQL: {error}"]
    return []


def unknown_metrics(expression: str, known: set[str], where: str) -> list[str]:
    return [f"{where}: unknown metric {name}" for name in sorted(metric_names(expression) - known)]


def check_monitoring(rendering: Rendering, repository: Path) -> list[str]:
    where = rendering.overlay
    problems = []
    known = switchboard_metrics(repository) | NATS_EXPORTER_METRICS | KUBE_STATE_METRICS | PROMETHEUS_METRICS
    problems += check_pod_monitors(rendering)
    rules = rendering.of_kind("PrometheusRule")
    if not rules:
        return problems + [f"{where}: no PrometheusRule"]
    watched = set()
    for rule_set in rules:
        for group in rule_set["spec"]["groups"]:
            for rule in group["rules"]:
                name = rule.get("alert") or rule.get("record") or "?"
                at = f"{where}: rule {name}"
                expression = rule.get("expr", "")
                problems += parse(expression, at)
                problems += unknown_metrics(expression, known, at)
                watched |= metric_names(expression)
                if "alert" in rule:
                    if rule.get("labels", {}).get("severity") not in ("warning", "critical"):
                        problems.append(f"{at}: needs a severity label (warning or critical)")
                    for annotation in ("summary", "description"):
                        if not rule.get("annotations", {}).get(annotation):
                            problems.append(f"{at}: needs a {annotation} annotation")
    for metric, purpose in REQUIRED_ALERT_METRICS.items():
        if metric not in watched:
            problems.append(f"{where}: no alert watches {purpose} ({metric})")
    problems += check_dashboard(rendering, known)
    return problems


def check_pod_monitors(rendering: Rendering) -> list[str]:
    """Each PodMonitor selects pods of this overlay that have the port it scrapes."""
    from network import matches

    problems = []
    pods = rendering.pod_templates()
    monitors = rendering.of_kind("PodMonitor") + rendering.of_kind("ServiceMonitor")
    scraped = set()
    for monitor in monitors:
        at = f"{rendering.overlay}: {monitor['kind']}/{monitor['metadata']['name']}"
        if monitor["kind"] != "PodMonitor":
            continue
        selected = [pod for pod in pods if matches(monitor["spec"]["selector"], pod.labels)]
        if not selected:
            problems.append(f"{at}: selects no pod")
        for endpoint in monitor["spec"]["podMetricsEndpoints"]:
            with_port = [pod for pod in selected if endpoint["port"] in pod.container_ports()]
            if not with_port:
                problems.append(f"{at}: no selected pod has a port named {endpoint['port']}")
            scraped |= {pod.where for pod in with_port}
    for pod in pods:
        if pod.kind != "Job" and pod.labels.get("app.kubernetes.io/name") in ("switchboard", "nats") and pod.where not in scraped:
            problems.append(f"{rendering.overlay}: {pod.where} is not scraped by any PodMonitor")
    return problems


def check_dashboard(rendering: Rendering, known: set[str]) -> list[str]:
    where = rendering.overlay
    config_map = rendering.named("ConfigMap", "switchboard-grafana-dashboard")
    if config_map is None:
        return [f"{where}: no ConfigMap switchboard-grafana-dashboard"]
    problems = []
    if config_map["metadata"].get("labels", {}).get("grafana_dashboard") != "1":
        problems.append(f"{where}: the dashboard ConfigMap needs the label grafana_dashboard=1")
    for key, text in config_map.get("data", {}).items():
        try:
            dashboard = json.loads(text)
        except json.JSONDecodeError as error:
            problems.append(f"{where}: dashboard {key} is not JSON: {error}")
            continue
        ids = [panel.get("id") for panel in dashboard.get("panels", [])]
        if len(ids) != len(set(ids)) or None in ids:
            problems.append(f"{where}: dashboard {key}: panel ids must be present and unique")
        used = set()
        for panel in dashboard.get("panels", []):
            for target in panel.get("targets", []):
                at = f"{where}: dashboard panel {panel.get('title')!r}"
                expression = target.get("expr", "")
                problems += parse(expression, at)
                problems += unknown_metrics(expression, known, at)
                used |= metric_names(expression)
        for metric in sorted(REQUIRED_DASHBOARD_METRICS - used):
            problems.append(f"{where}: the dashboard shows nothing of {metric}")
    return problems
