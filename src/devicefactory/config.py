"""Settings read from the environment (prefix DEVICEFACTORY_)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the service; one instance is passed into the app and the workers."""

    model_config = SettingsConfigDict(env_prefix="DEVICEFACTORY_", extra="ignore")

    database_url: str = "sqlite:///var/devicefactory.db"
    master_key_file: Path = Path("var/master.key")
    rotation_batch: int = Field(default=500, ge=1)  # keys re-sealed a transaction
    # The master key wrapped by an AES key inside a PKCS#11 token (keys/hsm.py).
    master_key_pkcs11_module: str | None = None
    master_key_pkcs11_token_label: str | None = None
    master_key_pkcs11_pin: str | None = None
    master_key_pkcs11_key_label: str | None = None
    dsn_prefix: str = Field(default="AC000W", pattern=r"^[A-Z0-9]{1,12}$")
    key_pool_target: int = Field(default=5000, ge=0)
    # Fair share of the pool (devices.service.KeyPoolShare); by default 20 % of the target
    # is kept for small batches of at most a quarter of that per OEM in five minutes.
    key_pool_floor: int | None = Field(default=None, ge=0)
    key_pool_small_batch: int | None = Field(default=None, ge=0)
    key_workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    token_ttl: int = Field(default=86400, ge=60)
    max_upload_bytes: int = Field(default=100 * 1024 * 1024, ge=1)
    max_json_bytes: int = Field(default=1024 * 1024, ge=1)
    max_upload_lines: int = Field(default=1_000_000, ge=1)
    upload_retention_days: int = Field(default=90, ge=1)
    lockout_failures: int = 5
    lockout_seconds: int = 30 * 60
    # Isolation and limits (SPEC §11); counted per web process.
    heavy_requests_per_oem: int = Field(default=4, ge=1)
    sign_in_per_address_per_minute: int = Field(default=20, ge=1)
    sign_in_per_email_per_minute: int = Field(default=10, ge=1)
    statement_timeout_seconds: float = Field(default=30, gt=0)
    body_idle_seconds: float = Field(default=15, gt=0)
    max_header_bytes: int = Field(default=16 * 1024, ge=1024)
    log_format: Literal["text", "json"] = "text"
    # /readyz says "not ready" while the key pool holds fewer keys (default: 10 % of the target).
    key_pool_low_water: int | None = Field(default=None, ge=0)
    # /metrics answers a request with "Authorization: Bearer <token>", or from loopback alone.
    metrics_token: str | None = None
    # Background workers inside `serve`; tests and `serve --no-workers` switch them off.
    run_workers: bool = True
    action_batch_size: int = Field(default=500, ge=1)
    action_poll_seconds: float = 0.5
    # A running action whose runner has not reported for this long is taken over.
    action_stale_seconds: float = Field(default=60, gt=0)
    # Webhook deliveries (webhooks.delivery): retries wait backoff * 2^(n-1) seconds, at most
    # the cap, for the retry window; each send may take the timeout (connect, write, read).
    webhook_backoff_seconds: float = Field(default=30, gt=0)
    webhook_max_backoff_seconds: float = Field(default=3600, gt=0)
    webhook_retry_window_seconds: float = Field(default=24 * 3600, gt=0)
    webhook_timeout_seconds: float = Field(default=5, gt=0, le=30)
    webhook_senders: int = Field(default=2, ge=1, le=32)
    webhook_poll_seconds: float = Field(default=0.5, gt=0)
    # Delivered and failed deliveries are deleted this long after their last attempt.
    webhook_retention_days: int = Field(default=30, ge=1)
