"""Typed bodies of the sign-in and admin API, for its OpenAPI description (SPEC §5).

The routes read the raw JSON themselves (AFS errors in the service's order); these models
say what they read and what they answer. Answers mirror the builders in ``schemas.py``
(tests/test_openapi.py checks that live answers match them).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from devicefactory.accounts.policy import ModelKind, Role

EMAIL = "operator@example.com"
OEM_ID = "0dfc7900"
CREATED_AT = "2016-11-24T10:34:23Z"
TOKEN = "9f2c4e0b7a1d4c8e9b3f6a2d5c7e1f04"
PEM_CERTIFICATE = "-----BEGIN CERTIFICATE-----\nMIIC...\n-----END CERTIFICATE-----\n"


class _Body(BaseModel):
    """A request body: unknown keys are ignored (SPEC §4), so they are allowed here."""

    model_config = ConfigDict(extra="allow")


class _Answer(BaseModel):
    """A response body: exactly these keys, nulls included."""

    model_config = ConfigDict(extra="forbid")


# --- sign-in and tokens ---------------------------------------------------------------


class Application(_Body):
    app_id: str = Field(examples=["factory-floor-id"])
    app_secret: str = Field(examples=["factory-floor-secret"])


class SignInUser(_Body):
    email: str = Field(examples=[EMAIL])
    password: str = Field(examples=["correct horse battery"])
    application: Application | None = Field(default=None, description="Optional; not checked")


class SignInRequest(_Body):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "user": {
                        "email": EMAIL,
                        "password": "correct horse battery",
                        "application": {"app_id": "factory-floor-id", "app_secret": "factory-floor-secret"},
                    }
                }
            ]
        }
    )

    user: SignInUser


class RefreshTokenUser(_Body):
    refresh_token: str = Field(examples=[TOKEN])


class RefreshTokenRequest(_Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"user": {"refresh_token": TOKEN}}]})

    user: RefreshTokenUser


class SignOutUser(_Body):
    access_token: str = Field(examples=[TOKEN])


class SignOutRequest(_Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"user": {"access_token": TOKEN}}]})

    user: SignOutUser


class Tokens(_Answer):
    access_token: str = Field(examples=[TOKEN])
    refresh_token: str = Field(examples=["4b1e8d2f6c0a4e7f8d3b9c1a2e5f7d06"])
    expires_in: int = Field(description="Seconds the access token lives", examples=[86400])
    role: Role


class SignedOut(_Answer):
    """``{}``: the access token no longer works."""


# --- OEMs -------------------------------------------------------------------------------


class OemFields(_Body):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "Acme Modules", "module_manufacturer": True}]}
    )

    name: str = Field(min_length=1, max_length=255, examples=["Acme Modules"])
    module_manufacturer: bool = Field(default=False, description="A module manufacturer OEM")
    certificate: str | None = Field(
        default=None, description="Factory certificate (X.509 PEM)", examples=[PEM_CERTIFICATE]
    )
    reservation_limit: int = Field(
        default=100_000,
        ge=1,
        le=2**31 - 1,
        description="Most devices the OEM may hold in status reserved at once",
    )


class OemCreate(_Body):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"oem": {"name": "Acme Modules", "module_manufacturer": True}}]}
    )

    oem: OemFields


class OemOut(_Answer):
    oem_id: str = Field(pattern="^[0-9a-f]{8}$", examples=[OEM_ID])
    name: str = Field(examples=["Acme Modules"])
    module_manufacturer: bool
    reservation_limit: int = Field(examples=[100_000])
    has_factory_certificate: bool
    created_at: str = Field(description="ISO 8601 UTC", examples=[CREATED_AT])


class OemEnvelope(_Answer):
    oem: OemOut


class OemList(_Answer):
    oems: list[OemOut]


# --- users ------------------------------------------------------------------------------


class UserFields(_Body):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"email": EMAIL, "password": "correct horse battery", "role": "OEM::Admin", "oem_id": OEM_ID}
            ]
        }
    )

    email: str = Field(examples=[EMAIL])
    password: str = Field(min_length=8, max_length=1024, examples=["correct horse battery"])
    role: Role
    oem_id: str | None = Field(
        default=None,
        description="Required for OEM roles, absent for Ayla::Admin; an OEM::Admin's own OEM by default",
        examples=[OEM_ID],
    )


class UserCreate(_Body):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "user": {
                        "email": EMAIL,
                        "password": "correct horse battery",
                        "role": "OEM::ModuleManufacturer",
                        "oem_id": OEM_ID,
                    }
                }
            ]
        }
    )

    user: UserFields


class UserOut(_Answer):
    id: int
    email: str = Field(examples=[EMAIL])
    role: Role
    oem_id: str | None = Field(examples=[OEM_ID])
    created_at: str = Field(description="ISO 8601 UTC", examples=[CREATED_AT])
    deactivated: bool = Field(description="Deactivated: cannot sign in, its tokens do not work")
    locked: bool = Field(description="Locked out of sign-in now by failed attempts (§5)")


class UserEnvelope(_Answer):
    user: UserOut


class UserList(_Answer):
    users: list[UserOut]


class PasswordFields(_Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"password": "a new long passphrase"}]})

    password: str = Field(min_length=8, max_length=1024, examples=["a new long passphrase"])


class PasswordSet(_Body):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"user": {"password": "a new long passphrase"}}]}
    )

    user: PasswordFields


class PasswordChangeFields(_Body):
    current_password: str = Field(examples=["correct horse battery"])
    new_password: str = Field(min_length=8, max_length=1024, examples=["a new long passphrase"])


class PasswordChange(_Body):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "user": {
                        "current_password": "correct horse battery",
                        "new_password": "a new long passphrase",
                    }
                }
            ]
        }
    )

    user: PasswordChangeFields


class PasswordChanged(_Answer):
    """``{}``: the password changed; the caller's other tokens stopped working."""


# --- module models ----------------------------------------------------------------------


class ModelFields(_Body):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"name": "AY001MTP1", "kind": "black_box", "description": "Wi-Fi production module"}]
        }
    )

    name: str = Field(max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$", examples=["AY001MTP1"])
    kind: ModelKind
    description: str | None = Field(default=None, max_length=255, examples=["Wi-Fi production module"])


class ModelCreate(_Body):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"model": {"name": "AY001MTP1", "kind": "black_box"}}]}
    )

    model: ModelFields


class ModelOut(_Answer):
    name: str = Field(examples=["AY001MTP1"])
    kind: ModelKind
    description: str = Field(examples=["Wi-Fi production module"])


class ModelEnvelope(_Answer):
    model: ModelOut


class ModelList(_Answer):
    models: list[ModelOut]
