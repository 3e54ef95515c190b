"""ORM classes of the devices domain: devices, their jobs, and the DSN counter."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from devicefactory.db import Base, UTCDateTime, utcnow

# DSNs compare byte by byte ("C" collation) on PostgreSQL, so that the primary key's
# btree serves prefix searches and DSN order directly (SQLite's BINARY already does).
DsnType = String(32).with_variant(String(32, collation="C"), "postgresql")


class DeviceStatus(enum.StrEnum):
    RESERVED = "reserved"
    MANUFACTURED = "manufactured"
    PROVISIONED = "provisioned"
    # A reserved DSN that was never manufactured, given up for good: its private key is
    # destroyed, it no longer counts toward the reservation limit (docs/lifecycle.md).
    RETIRED = "retired"


class Counter(Base):
    """Atomic counters: ``dsn`` (every DSN range is cut from it), ``keys_generated``."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    next_value: Mapped[int] = mapped_column(BigInteger)


class Device(Base):
    __tablename__ = "devices"
    __table_args__ = (
        Index("ix_devices_reserved_by_dsn", "reserved_by_oem_id", "dsn"),
        Index("ix_devices_owner_dsn", "owner_oem_id", "dsn"),
        # Date-range searches read the page's DSNs, and check the tenant wall, from
        # these alone (see queries._date_range_statement).
        *(
            Index(f"ix_devices_{event}_dsn", event, "dsn", "reserved_by_oem_id", "owner_oem_id")
            for event in ("reserved_at", "manufactured_at", "provisioned_at")
        ),
    )

    dsn: Mapped[str] = mapped_column(DsnType, primary_key=True)
    model: Mapped[str] = mapped_column(ForeignKey("module_models.name"), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    public_key: Mapped[str] = mapped_column(Text)
    # None once the device is retired: the key is destroyed (crypto-shredding).
    sealed_private_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    master_key_id: Mapped[str | None] = mapped_column(String(16), default=None)
    reserved_by_oem_id: Mapped[str | None] = mapped_column(ForeignKey("oems.oem_id"))
    owner_oem_id: Mapped[str | None] = mapped_column(ForeignKey("oems.oem_id"), default=None)
    reserve_action_id: Mapped[int | None] = mapped_column(
        ForeignKey("factory_actions.id"), index=True, default=None
    )
    reserved_at: Mapped[datetime] = mapped_column(UTCDateTime)
    manufactured_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    provisioned_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Factory data (manufacture and provision): one column per row of device_fields.FIELDS,
    # spelled out for mypy; tests/test_device_fields.py checks that they match the rows.
    mac: Mapped[str | None] = mapped_column(String(12), unique=True, default=None)
    hwsig: Mapped[str | None] = mapped_column(String(128), unique=True, default=None)
    dom_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    manuf_model: Mapped[str | None] = mapped_column(String(255), default=None)
    manuf_sn: Mapped[str | None] = mapped_column(String(255), default=None)
    odm: Mapped[str | None] = mapped_column(String(255), default=None)
    module_sw_version: Mapped[str | None] = mapped_column(String(255), default=None)
    oem_host_version: Mapped[str | None] = mapped_column(String(255), default=None)
    wifi_setup_key: Mapped[str | None] = mapped_column(String(255), default=None)
    ads_connect_flag: Mapped[bool | None] = mapped_column(Boolean, default=None)
    oem_model: Mapped[str | None] = mapped_column(String(255), default=None)
    # Cloud-side state that a factory reset clears.
    template_id: Mapped[str | None] = mapped_column(String(255), default=None)
    registered_user: Mapped[str | None] = mapped_column(String(255), default=None)
    datapoint_count: Mapped[int] = mapped_column(Integer, default=0)
    # Whether the device's latest job failed (the DSN View's errors=failure).
    last_job_failed: Mapped[bool] = mapped_column(Boolean, default=False)


class JobResult(enum.StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"


class Job(Base):
    """One operation on one device: its history (VIEW JOBS)."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_dsn_id", "dsn", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    dsn: Mapped[str] = mapped_column(DsnType, ForeignKey("devices.dsn", ondelete="CASCADE"))
    action_id: Mapped[int | None] = mapped_column(ForeignKey("factory_actions.id"), index=True)
    operation: Mapped[str] = mapped_column(String(32))
    result: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(String(16), default=None)
    message: Mapped[str | None] = mapped_column(Text, default=None)
    created_by: Mapped[str | None] = mapped_column(String(255), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # A refused call by an OEM that neither reserved nor owns the device is that OEM's
    # record alone (§11): the device's own OEMs do not see it.
    visible_to_oem_id: Mapped[str | None] = mapped_column(String(8), default=None)
    # A refused manufacture or provision: the unique values it claimed (mac, hwsig) as a JSON
    # object, the evidence of an anomaly (an upload line keeps its raw line instead).
    claimed: Mapped[str | None] = mapped_column(Text, default=None)


class UsedVerifyToken(Base):
    """A verify token that was accepted: the same token again is a replay (§11).

    Kept a little longer than a token can be valid (its time within 5 minutes of ours).
    """

    __tablename__ = "used_verify_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    dsn: Mapped[str] = mapped_column(DsnType)
    used_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
