#!/usr/bin/env bash
# The two-worker test with each `hub-assets worker` in a network namespace of its own, as on two
# other hosts: PostgreSQL, the broker and S3 reached over a veth pair, not loopback.
#
#   sudo hub_assets_tests/workers/netns.sh        (root: ip netns; only the addresses below are made)
#
# Makes namespaces hubw1 and hubw2, each joined to the host by a veth pair (10.77.1.1 <-> 10.77.1.2,
# 10.77.2.1 <-> 10.77.2.2), runs the test, and removes both whatever the outcome. The machine's
# services are not reconfigured: the test relays its PostgreSQL, broker and S3 endpoints onto the
# host side of each pair with socat (hub_assets_tests/workers/processes.py:Forward).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

declare -A HOST_ADDRESS=([hubw1]=10.77.1.1 [hubw2]=10.77.2.1)

teardown() {
    for ns in "${!HOST_ADDRESS[@]}"; do
        ip link delete "veth-$ns" 2>/dev/null || true   # deletes its peer in the namespace too
        ip netns delete "$ns" 2>/dev/null || true
    done
}
trap teardown EXIT
teardown

spec=()
for ns in "${!HOST_ADDRESS[@]}"; do
    host=${HOST_ADDRESS[$ns]}
    inner=${host%.1}.2
    ip netns add "$ns"
    ip link add "veth-$ns" type veth peer name eth0 netns "$ns"
    ip addr add "$host/30" dev "veth-$ns"
    ip link set "veth-$ns" up
    ip -n "$ns" addr add "$inner/30" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    spec+=("$ns=$host")
done

export HUB_TEST_NETNS
HUB_TEST_NETNS=$(IFS=,; echo "${spec[*]}")
test=hub_assets_tests/workers/test_scaleout.py::test_twenty_pushes_on_two_workers_each_in_a_network_namespace_of_its_own
.venv/bin/python -m pytest -q -m slow -p no:cacheprovider "$test" "$@"
