"""The spec language (DESIGN.md, contract) as pydantic v2 models.

These models check the *shape* of a spec: keys, types, units, exactly one job kind. Checks
that need the whole workflow (needs, cycles, hosts, templates, files) live in
`ccspec.spec.checks`. `schemas/workflow.schema.json` is generated from these models
(`ccspec schema`), so editors and CI see the same rules.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from ccspec.spec.units import (
    DURATION_HELP,
    DURATION_PATTERN,
    MEMORY_HELP,
    MEMORY_PATTERN,
    parse_duration,
    parse_memory,
    whole_number,
)

__all__ = [
    "ARRAY_MAX",
    "JOB_KINDS",
    "KIND_OF_FIELD",
    "NAME_PATTERN",
    "NAME_RULE",
    "PACK_MAX",
    "Defaults",
    "Host",
    "Job",
    "LocalHost",
    "Resources",
    "SlurmHost",
    "SshHost",
    "Workflow",
    "WslHost",
]

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
NAME_RULE = "use lowercase letters, digits, '-' and '_', starting with a letter or digit, at most 63 characters"
VAR_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
ENV_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
VarName = Annotated[str, StringConstraints(pattern=VAR_PATTERN)]
EnvName = Annotated[str, StringConstraints(pattern=ENV_PATTERN)]
Scalar = str | int | float | bool
SbatchOption = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")]
# YAML gives real ints; `true` is not a count, `2.0` is (JSON Schema cannot tell it from 2)
# (written after a count's limits, so that the schema keeps them as minimum and maximum)
Count = Annotated[int, Field(strict=True)]
Whole = BeforeValidator(whole_number)
JOB_KINDS = ("run", "script", "notebook")
ARRAY_MAX = 1000  # members of one Slurm job array: Slurm's default MaxArraySize is 1001
PACK_MAX = 1000  # members of one pack (one Slurm job)
# Keys that belong to one kind of job; on another kind they are an error (the resolver
# reports them, the schema's per-kind branches forbid them).
KIND_OF_FIELD = {
    "args": "script",
    "interpreter": "script",
    "shell": "run",
    "parameters": "notebook",
    "kernel": "notebook",
}

_DURATION_SCHEMA = {
    "anyOf": [
        {
            "type": "string",
            "pattern": DURATION_PATTERN,
        },
        {"type": "number", "exclusiveMinimum": 0},
    ],
    "description": f"Seconds, or {DURATION_HELP}.",
}
Duration = Annotated[float, BeforeValidator(parse_duration), WithJsonSchema(_DURATION_SCHEMA)]
Memory = Annotated[
    int,
    BeforeValidator(parse_memory),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": MEMORY_PATTERN},
                {"type": "integer", "minimum": 1},
            ],
            "description": f"Megabytes, or {MEMORY_HELP}.",
        }
    ),
]


def _env_value(value: object) -> object:
    # `DEBUG: yes` or `THREADS: 2` are meant as text; environment values are strings.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return value


EnvValue = Annotated[
    str,
    BeforeValidator(_env_value),
    WithJsonSchema({"type": ["string", "number", "boolean"]}),
]


def _one_or_many(value: object) -> object:
    """`needs: fetch` means `needs: [fetch]`; `needs: [1]` names the job "1"."""
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        value = [value]
    if isinstance(value, list):
        return [
            str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v for v in value
        ]
    return value


# `needs: fetch` and `inputs: data.csv` are shorthands for one-item lists.
OneOrMany = Annotated[
    list[str],
    BeforeValidator(_one_or_many),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": ["string", "number"]},
                {"type": "array", "items": {"type": ["string", "number"]}},
            ]
        }
    ),
]


def _job_kinds(schema: dict[str, Any]) -> None:
    """Exactly one kind per job, and only that kind's keys: one branch per kind, each saying
    its kind key is text, the other kinds are absent (or null), other kinds' keys absent."""
    branches: list[dict[str, Any]] = []
    for kind in JOB_KINDS:
        properties: dict[str, Any] = {kind: {"type": "string"}}
        properties.update({other: {"type": "null"} for other in JOB_KINDS if other != kind})
        properties.update({key: False for key, owner in KIND_OF_FIELD.items() if owner != kind})
        branches.append({"title": f"a {kind} job", "required": [kind], "properties": properties})
    schema["oneOf"] = branches


def _number_version(value: object) -> object:
    value = whole_number(value)
    if isinstance(value, bool) or not isinstance(value, int):
        shown = f"the text {value!r}; remove the quotes" if isinstance(value, str) else repr(value)
        raise ValueError(f"`version` must be the number 1, not {shown}")
    return value


def _array_size(value: object) -> object:
    value = whole_number(value)
    if value is None or isinstance(value, bool):
        return value
    if not isinstance(value, int) or not 1 <= value <= ARRAY_MAX:
        raise ValueError(
            f"`array` must be true, false or the most members of one Slurm job array (1 to {ARRAY_MAX})"
        )
    return value


def _pack_size(value: object) -> object:
    value = whole_number(value)
    if value is None:
        return value
    if isinstance(value, bool) or not isinstance(value, int) or not 2 <= value <= PACK_MAX:
        raise ValueError(
            f"`pack` must be the most members of one Slurm job, a number from 2 to {PACK_MAX}"
        )
    return value


PackSize = Annotated[
    int,
    BeforeValidator(_pack_size),
    WithJsonSchema({"type": "integer", "minimum": 2, "maximum": PACK_MAX}),
]

ArraySize = Annotated[
    bool | int,
    BeforeValidator(_array_size),
    WithJsonSchema(
        {"anyOf": [{"type": "boolean"}, {"type": "integer", "minimum": 1, "maximum": ARRAY_MAX}]}
    ),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Resources(_Model):
    """What a job asks of the machine; passed to schedulers, not part of the fingerprint."""

    cpus: Annotated[Count, Field(ge=1, le=100_000), Whole] | None = Field(
        None, description="CPU cores"
    )
    mem: Memory | None = Field(None, description="Memory, e.g. 4G (megabytes when a number)")
    time: Duration | None = Field(None, description="Wall-time limit asked of a scheduler")
    gpus: Annotated[Count, Field(ge=0, le=1024), Whole] | None = Field(None, description="GPUs")


class _HostBase(_Model):
    workdir: str | None = Field(
        None, description="Folder where jobs run and ccspec keeps run folders"
    )
    env: dict[EnvName, EnvValue] = Field(
        default_factory=dict, description="Environment for every job on this host"
    )
    max_jobs: Annotated[Count, Field(ge=1), Whole] | None = Field(
        None,
        description="Jobs at once on this host (default: -j for local, 32 for ssh, 8 for wsl, 1000 for slurm)",
    )


class LocalHost(_HostBase):
    """This machine."""

    type: Literal["local"]


class _RemoteLogin(_HostBase):
    user: str | None = Field(
        None, description="Login name (default: from ~/.ssh/config or the current user)"
    )
    port: Annotated[Count, Field(ge=1, le=65535), Whole] | None = None
    key: str | None = Field(None, description="Private key file")
    proxy_jump: str | None = Field(None, description="Jump host, as ssh's -J")
    python: str = Field(
        "python3", description="Python on the remote side, for script and notebook jobs"
    )


class SshHost(_RemoteLogin):
    """A machine reached over ssh; jobs run detached there."""

    type: Literal["ssh"]
    host: str = Field(..., min_length=1, description="Host name, address or ~/.ssh/config alias")


class SlurmHost(_RemoteLogin):
    """A Slurm cluster, submitted to locally or through ssh to a login node."""

    type: Literal["slurm"]
    ssh: str | None = Field(
        None, description="Login node to submit through; omitted: sbatch on this machine"
    )
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    sbatch: dict[SbatchOption, Scalar] = Field(
        default_factory=dict, description="Extra sbatch options, e.g. {constraint: haswell}"
    )


class WslHost(_HostBase):
    """A Windows Subsystem for Linux distribution, reached through wsl.exe."""

    type: Literal["wsl"]
    distro: str = Field(..., min_length=1)
    user: str | None = None
    wsl_exe: str = Field("wsl.exe", description="Path of wsl.exe")


Host = Annotated[LocalHost | SshHost | SlurmHost | WslHost, Field(discriminator="type")]
HOST_TYPES = ("local", "ssh", "slurm", "wsl")


class Defaults(_Model):
    """Values every job gets unless it sets its own."""

    host: str | None = None
    timeout: Duration | None = None
    retries: Annotated[Count, Field(ge=0, le=100), Whole] | None = None
    resources: Resources | None = None
    env: dict[EnvName, EnvValue] = Field(default_factory=dict)
    shell: str | None = None
    workdir: str | None = None


MatrixSpec = dict[str, Any] | str


class Job(_Model):
    """One job, or a family of jobs when it has a `matrix`."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, json_schema_extra=_job_kinds
    )

    description: str | None = None
    run: str | None = Field(None, description="A shell command (bash on POSIX)")
    script: str | None = Field(None, description="A script file, relative to the spec")
    notebook: str | None = Field(None, description="A Jupyter notebook, executed with papermill")
    args: list[Scalar] = Field(
        default_factory=list, description="Arguments of a script (argv, no shell)"
    )
    interpreter: str | None = Field(
        None, description="Program that runs the script (default from its suffix)"
    )
    shell: str | None = Field(
        None, description="Shell of a run: command, e.g. bash, sh, cmd, powershell"
    )
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="Notebook parameters (papermill)"
    )
    kernel: str | None = Field(None, description="Notebook kernel name")
    host: str | None = None
    needs: OneOrMany = Field(default_factory=list)
    matrix: MatrixSpec | None = Field(
        None,
        description="Fan-out: {name: [values]}, with optional include/exclude, or a template of an upstream output",
    )
    inputs: OneOrMany = Field(
        default_factory=list, description="Files (globs) whose content is part of the fingerprint"
    )
    resources: Resources | None = None
    array: ArraySize | None = Field(
        None,
        description="Slurm job arrays for a matrix job: members ready together go as one `sbatch --array` (true), or as arrays of at most this many members",
    )
    pack: PackSize | None = Field(
        None,
        description="Slurm packing for a matrix job: up to this many members ready together run inside ONE Slurm job, as many at once as its allocation holds",
    )
    env: dict[EnvName, EnvValue] = Field(default_factory=dict)
    retries: Annotated[Count, Field(ge=0, le=100), Whole] | None = None
    timeout: Duration | None = None
    workdir: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Job:
        kinds = [k for k in JOB_KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            found = " and ".join(kinds) if kinds else "none"
            raise ValueError(f"a job needs exactly one of run, script or notebook (found {found})")
        return self

    @property
    def kind(self) -> str:
        return (
            "run" if self.run is not None else "script" if self.script is not None else "notebook"
        )


class Workflow(_Model):
    """A workflow spec file."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "title": "ccspec workflow",
            "$id": "https://ccspec.dev/schemas/workflow.schema.json",
        },
    )

    version: Annotated[Literal[1], BeforeValidator(_number_version)] = Field(
        ..., description="Spec language version; must be 1"
    )
    name: Name | None = Field(None, description="Workflow name; defaults to the file stem")
    description: str | None = None
    vars: dict[VarName, Any] = Field(
        default_factory=dict, description="Template values; `--var k=v` overrides"
    )
    secrets: list[VarName] = Field(
        default_factory=list, description="Names of vars to redact in status files, API and logs"
    )
    hosts: dict[Name, Host] = Field(
        default_factory=dict, description="Where jobs run; `local` always exists"
    )
    defaults: Defaults = Field(default_factory=Defaults)
    allow_outside_repo: Annotated[bool, Field(strict=True)] = Field(
        False, description="Allow script, notebook and input paths outside the repository"
    )
    jobs: dict[Name, Job] = Field(..., min_length=1, description="The jobs, by name")
