"""Who can reach whom: the rendered NetworkPolicies evaluated for every pod, compared with the
intended matrix (deploy/k8s/base/policies/networkpolicies.yaml explains it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from manifests import ADMIN_PORT, GATEWAY, GATEWAY_PORT, GRPC_PORT, SERVICES, Rendering

# Namespaces outside Switchboard's that the policies name.
INGRESS_NAMESPACE = "ingress-nginx"
MONITORING_NAMESPACE = "monitoring"
CNPG_NAMESPACE = "cnpg-system"

NATS_CLIENT_PORT = 4222
NATS_ROUTE_PORT = 6222
NATS_MONITOR_PORT = 8222
NATS_EXPORTER_PORT = 7777
POSTGRES_PORT = 5432


@dataclass
class Peer:
    """A pod that may send or receive traffic."""

    name: str
    namespace: str
    labels: dict
    ports: dict = field(default_factory=dict)  # named ports → numbers
    # Pods of other namespaces: our policies do not restrict what they send.
    foreign: bool = False


def matches(selector: dict | None, labels: dict) -> bool:
    if selector is None:
        return True
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def namespace_labels(name: str) -> dict:
    return {"kubernetes.io/metadata.name": name}


def peer_matches(rule_peer: dict, policy_namespace: str, peer: Peer) -> bool:
    if "ipBlock" in rule_peer:
        return peer.foreign
    if "namespaceSelector" in rule_peer:
        if not matches(rule_peer["namespaceSelector"], namespace_labels(peer.namespace)):
            return False
    elif peer.namespace != policy_namespace:
        return False
    return matches(rule_peer.get("podSelector"), peer.labels)


def port_matches(rule_ports: list | None, port: int, target: Peer) -> bool:
    if not rule_ports:
        return True
    for rule_port in rule_ports:
        wanted = rule_port.get("port")
        if wanted is None or wanted == port or target.ports.get(wanted) == port:
            if rule_port.get("protocol", "TCP") == "TCP":
                return True
    return False


class Policies:
    def __init__(self, rendering: Rendering):
        self.policies = rendering.of_kind("NetworkPolicy")

    def _selecting(self, pod: Peer, direction: str) -> list[dict]:
        return [
            policy for policy in self.policies
            if policy["metadata"].get("namespace") == pod.namespace
            and direction in policy["spec"].get("policyTypes", ["Ingress"])
            and matches(policy["spec"].get("podSelector", {}), pod.labels)
        ]

    def _allows(self, direction: str, owner: Peer, other: Peer, port: int, target: Peer) -> bool:
        if owner.foreign:
            return True
        selecting = self._selecting(owner, direction)
        if not selecting:
            return True
        key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
        for policy in selecting:
            for rule in policy["spec"].get(key, []):
                peers = rule.get(peers_key)
                if peers and not any(
                    peer_matches(rule_peer, owner.namespace, other) for rule_peer in peers
                ):
                    continue
                if port_matches(rule.get("ports"), port, target):
                    return True
        return False

    def can_connect(self, source: Peer, target: Peer, port: int) -> bool:
        return self._allows("Egress", source, target, port, target) and self._allows(
            "Ingress", target, source, port, target
        )


def peers_of(rendering: Rendering) -> list[Peer]:
    """Every pod of the overlay, plus the outside pods the policies are about."""
    namespace = rendering.namespace
    peers = []
    for pod in rendering.pod_templates():
        name = pod.component or pod.name
        if pod.labels.get("app.kubernetes.io/name") == "postgresql":
            name = "postgres"
        peers.append(Peer(name, namespace, pod.labels, pod.container_ports()))
    # CloudNativePG creates its instances' pods: labels from the Cluster.
    for cluster in rendering.of_kind("Cluster"):
        labels = dict(cluster["spec"].get("inheritedMetadata", {}).get("labels", {}))
        labels.update({"cnpg.io/cluster": cluster["metadata"]["name"], "cnpg.io/podRole": "instance"})
        peers.append(Peer("postgres", namespace, labels, {"postgresql": POSTGRES_PORT}))
    peers += [
        Peer("ingress-controller", INGRESS_NAMESPACE, {"app.kubernetes.io/name": "ingress-nginx"}, foreign=True),
        Peer("prometheus", MONITORING_NAMESPACE, {"app.kubernetes.io/name": "prometheus"}, foreign=True),
        Peer("cnpg-operator", CNPG_NAMESPACE, {"app.kubernetes.io/name": "cloudnative-pg"}, foreign=True),
        Peer("elsewhere", "default", {"switchboard.io/grpc-client": "true"}, foreign=True),
        # Pods of Switchboard's namespace that are not Switchboard: a labelled gRPC client, and not.
        Peer("grpc-client", namespace, {"switchboard.io/grpc-client": "true"}),
        Peer("stranger", namespace, {"app.kubernetes.io/name": "stranger"}),
    ]
    return peers


def expected_matrix(rendering: Rendering) -> dict[tuple[str, int], set[str]]:
    """(destination, port) → the peers that may connect, and no others."""
    services = set(SERVICES)
    database_clients = set(services)
    if rendering.of_kind("Cluster"):
        # Instances replicate from each other; the operator checks them.
        database_clients |= {"postgres", "cnpg-operator"}
    matrix = {
        (GATEWAY, GATEWAY_PORT): {"ingress-controller"},
        (GATEWAY, ADMIN_PORT): {"prometheus"},
        ("nats", NATS_CLIENT_PORT): {GATEWAY} | services,
        ("nats", NATS_ROUTE_PORT): {"nats"},
        ("nats", NATS_MONITOR_PORT): set(),
        ("nats", NATS_EXPORTER_PORT): {"prometheus"},
        ("postgres", POSTGRES_PORT): database_clients,
    }
    for service in services:
        matrix[(service, GRPC_PORT)] = {"grpc-client"}
        matrix[(service, ADMIN_PORT)] = {"prometheus"}
    return matrix


def check_network(rendering: Rendering) -> list[str]:
    problems = []
    where = rendering.overlay
    policies = Policies(rendering)
    deny_all = [
        policy for policy in policies.policies
        if policy["spec"].get("podSelector") == {}
        and set(policy["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
        and not policy["spec"].get("ingress") and not policy["spec"].get("egress")
    ]
    if not deny_all:
        problems.append(f"{where}: no default-deny NetworkPolicy (all pods, ingress and egress)")
    peers = peers_of(rendering)
    by_name: dict[str, list[Peer]] = {}
    for peer in peers:
        by_name.setdefault(peer.name, []).append(peer)
    for (destination, port), allowed in sorted(expected_matrix(rendering).items()):
        targets = by_name.get(destination, [])
        if not targets:
            problems.append(f"{where}: no pod is {destination}")
            continue
        for target in targets:
            actual = {source.name for source in peers if policies.can_connect(source, target, port)}
            if actual != allowed:
                extra, missing = sorted(actual - allowed), sorted(allowed - actual)
                detail = "; ".join(
                    part for part in (
                        f"also reachable from {', '.join(extra)}" if extra else "",
                        f"not reachable from {', '.join(missing)}" if missing else "",
                    ) if part
                )
                problems.append(f"{where}: {destination}:{port}: {detail}")
    dns = Peer("kube-dns", "kube-system", {"k8s-app": "kube-dns"}, foreign=True)
    for peer in peers:
        if not peer.foreign and peer.name not in ("grpc-client", "stranger") and not policies.can_connect(peer, dns, 53):
            problems.append(f"{where}: {peer.name} cannot resolve names (no egress to kube-dns:53)")
    return problems
