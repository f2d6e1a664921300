"""deploy/docker-compose.yml, read as data: Docker is not on the development machines."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from typing import Any

import pytest
import yaml

from shared.jobs import utcnow
from shared.redis_keys import webhook_dispatcher_key
from shared.workers import WorkerInfo, WorkerRegistry
from testbed.paths import REPO_ROOT
from testbed.processes import RedisServer

DEPLOY = REPO_ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
SECRET_NAME = re.compile(r"KEY|SECRET|PASSWORD|TOKEN|AUTH|CREDENTIAL", re.IGNORECASE)
# A value taken from the environment and required there, with no default to fall back on.
REQUIRED_VARIABLE = re.compile(r"^\$\{[A-Z0-9_]+(:?\?[^}]*)?\}$")


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    compose = yaml.safe_load(COMPOSE.read_text())
    return compose["services"]  # type: ignore[no-any-return]


def gpu_workers(services: dict[str, Any]) -> dict[str, Any]:
    return {
        name: service
        for name, service in services.items()
        if service.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices")
    }


def test_every_part_is_there(services: dict[str, Any]) -> None:
    assert {"redis", "minio", "gateway", "worker-cpu", "worker-webhooks", "flower"} <= set(services)
    models = {s["environment"].get("AUDIOCHAT_MODEL") for s in gpu_workers(services).values()}
    assert models == {"qwen2-audio", "qwen-audio-chat"}


def test_each_gpu_worker_holds_exactly_one_gpu(services: dict[str, Any]) -> None:
    workers = gpu_workers(services)
    assert len([w for w in workers.values() if "qwen2-audio" in w["profiles"]]) >= 2
    taken: dict[str, set[str]] = {}
    for name, worker in workers.items():
        (device,) = worker["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"], name
        (device_id,) = device["device_ids"]
        # The reserved card is the only one the container sees: it is cuda:0 in there.
        assert worker["environment"]["CUDA_VISIBLE_DEVICES"] == "0", name
        assert worker["environment"]["AUDIOCHAT_DEVICE"] == "cuda", name
        for profile in worker["profiles"]:
            assert device_id not in taken.setdefault(profile, set()), (name, device_id)
            taken[profile].add(device_id)


def test_gpu_workers_mount_their_checkpoint_read_only(services: dict[str, Any]) -> None:
    for name, worker in gpu_workers(services).items():
        (volume,) = worker["volumes"]
        source, target, mode = volume.rsplit(":", 2)
        assert mode == "ro", name
        # Checkpoints are tens of GB: by default they live outside the checkout.
        assert source.startswith("${AUDIOCHAT_MODELS_DIR:-/srv/"), name
        assert worker["environment"]["AUDIOCHAT_MODEL_PATH"] == target, name


def test_everything_has_a_health_check(services: dict[str, Any]) -> None:
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), name
    for name in ("worker-cpu", *gpu_workers(services)):
        # Loading a model takes minutes: a worker is not declared unhealthy while it loads.
        assert services[name]["healthcheck"]["start_period"] == "600s", name


def test_dependencies_wait_until_healthy(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in services, (name, dependency)
            assert condition == {"condition": "service_healthy"}, (name, dependency)
    for name in ("gateway", "worker-cpu", "worker-webhooks", "flower", *gpu_workers(services)):
        assert "redis" in services[name]["depends_on"], name


def test_no_secret_is_written_in_the_file(services: dict[str, Any]) -> None:
    for name, service in services.items():
        environment = service.get("environment", {})
        assert isinstance(environment, dict), name
        for variable, value in environment.items():
            if SECRET_NAME.search(variable):
                assert REQUIRED_VARIABLE.match(str(value)), (name, variable, value)
    text = COMPOSE.read_text()
    assert "minioadmin" not in text
    assert not re.search(r"://[^/\s:@]+:[^/\s@$]+@", text), "credentials inside a URL"


def test_ports_are_published_on_loopback_only(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)


def test_redis_keeps_jobs_and_never_evicts(services: dict[str, Any]) -> None:
    command = services["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    # A memory limit, and at it refusals, not evictions: no queued task or record can vanish.
    assert re.fullmatch(
        r"\$\{AUDIOCHAT_REDIS_MAXMEMORY:-\d+[kmg]b\}", command[command.index("--maxmemory") + 1]
    )
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"


def test_the_gateway_is_reached_only_through_the_proxy(services: dict[str, Any]) -> None:
    assert "ports" not in services["gateway"]
    proxy = services["proxy"]
    (mount,) = proxy["volumes"]
    source, target, mode = mount.split(":")
    assert (DEPLOY / source).resolve() == DEPLOY / "nginx.conf" and mode == "ro"
    assert target == "/etc/nginx/nginx.conf"
    assert proxy["depends_on"] == {"gateway": {"condition": "service_healthy"}}
    config = (DEPLOY / "nginx.conf").read_text()
    for directive in ("client_header_timeout", "client_body_timeout", "send_timeout"):
        assert re.search(rf"^\s*{directive} \d+s;", config, re.MULTILINE), directive
    assert "server gateway:8000;" in config and "proxy_buffering off;" in config


def test_images_are_built_from_dockerfiles_that_exist(services: dict[str, Any]) -> None:
    for name, service in services.items():
        if "build" in service:
            assert (DEPLOY.parent / service["build"]["dockerfile"]).is_file(), name
    # The gateway image installs the base package only: no torch, no worker extras.
    gateway = (DEPLOY / "Dockerfile.gateway").read_text()
    installs = [line for line in gateway.splitlines() if "pip install" in line]
    assert installs and not any("torch" in line or "[" in line for line in installs)


def test_qwen_audio_chat_image_pins_transformers_below_4_54(services: dict[str, Any]) -> None:
    dockerfile = services["worker-qwen-audio-chat-gpu0"]["build"]["dockerfile"]
    assert "requirements-qwen-audio-chat.txt" in (DEPLOY.parent / dockerfile).read_text()
    requirements = (DEPLOY / "requirements-qwen-audio-chat.txt").read_text()
    (pin,) = re.findall(r"^transformers==(\d+)\.(\d+)\.\d+$", requirements, re.MULTILINE)
    assert (4, 32) <= (int(pin[0]), int(pin[1])) < (4, 54)


def test_worker_health_check_passes_only_with_a_live_heartbeat(
    services: dict[str, Any], redis_server: RedisServer
) -> None:
    command = services["worker-cpu"]["healthcheck"]["test"]
    assert command[:3] == ["CMD", "python", "-c"]
    url = redis_server.url(9)
    env = {**os.environ, "AUDIOCHAT_REDIS_URL": url, "PYTHONPATH": str(REPO_ROOT)}

    def healthy() -> bool:
        check = subprocess.run([sys.executable, "-c", command[3]], env=env, timeout=30)
        return check.returncode == 0

    registry = WorkerRegistry(redis_server.client(9))
    assert not healthy()
    info = WorkerInfo(
        name=f"embedded-1@{socket.gethostname()}",
        model="embedded",
        queue="model.embedded",
        device="cpu",
        pid=1,
        hostname=socket.gethostname(),
        started_at=utcnow(),
    )
    registry.beat(info)
    try:
        assert healthy()
    finally:
        registry.remove(info.name)
    assert not healthy()


def test_the_healthcheck_test_is_the_same_for_every_worker(services: dict[str, Any]) -> None:
    tests = {
        str(services[name]["healthcheck"]["test"])
        for name in ("worker-cpu", *gpu_workers(services))
    }
    assert len(tests) == 1


def test_webhooks_have_a_worker_of_their_own_without_models(services: dict[str, Any]) -> None:
    webhooks = services["worker-webhooks"]
    assert webhooks["command"] == ["audiochat", "webhook-worker"]
    assert webhooks["restart"] == "unless-stopped"
    # The gateway's image: no torch, and no model or store settings.
    assert webhooks["build"]["dockerfile"] == "deploy/Dockerfile.gateway"
    assert "COPY webhooks" in (DEPLOY / "Dockerfile.gateway").read_text()
    assert "AUDIOCHAT_MODEL" not in webhooks["environment"]
    assert not any("S3" in name for name in webhooks["environment"])
    # The gateway checks webhook URLs with the same policy the webhook worker applies.
    allowed = "AUDIOCHAT_WEBHOOKS__ALLOWED_NETWORKS"
    assert webhooks["environment"][allowed] == services["gateway"]["environment"][allowed]


def test_presigned_uploads_name_an_address_clients_reach(services: dict[str, Any]) -> None:
    assert "127.0.0.1:9000:9000" in services["minio"]["ports"]
    public = services["gateway"]["environment"]["AUDIOCHAT_S3__PUBLIC_ENDPOINT_URL"]
    assert public.endswith(":-http://127.0.0.1:9000}")


def test_webhook_worker_health_check_passes_only_while_its_dispatcher_runs(
    services: dict[str, Any], redis_server: RedisServer
) -> None:
    command = services["worker-webhooks"]["healthcheck"]["test"]
    assert command[:3] == ["CMD", "python", "-c"]
    env = {**os.environ, "AUDIOCHAT_REDIS_URL": redis_server.url(9), "PYTHONPATH": str(REPO_ROOT)}

    def healthy() -> bool:
        return (
            subprocess.run([sys.executable, "-c", command[3]], env=env, timeout=30).returncode == 0
        )

    client = redis_server.client(9)
    key = webhook_dispatcher_key(f"webhooks-1@{socket.gethostname()}")
    assert not healthy()
    client.set(webhook_dispatcher_key("webhooks-1@another-host"), "1", ex=30)
    assert not healthy()
    client.set(key, "1", ex=30)
    try:
        assert healthy()
    finally:
        client.delete(key, webhook_dispatcher_key("webhooks-1@another-host"))
    assert not healthy()
