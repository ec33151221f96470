"""The resolver: expands a shape-checked workflow into concrete jobs -- matrices, templates,
defaults, needs -- reporting every problem as a diagnostic that points at the spec line it
comes from, and going on after a problem so one run reports them all.

Used by ccspec.spec.resolve, at plan time for a whole workflow and at launch time for a job
whose fields or matrix wait for upstream outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ccspec.errors import Diagnostic
from ccspec.redact import secret_values
from ccspec.spec import matrix as matrix_mod
from ccspec.spec.models import ARRAY_MAX, KIND_OF_FIELD, Job, LocalHost, Resources, Workflow
from ccspec.spec.rendering import FieldRenderer, nested_template, suggest
from ccspec.spec.resolved import ResolvedJob, ResolvedWorkflow
from ccspec.spec.source import Source, ValuePath
from ccspec.spec.templating import has_template

__all__ = ["PATH_FIELDS", "UPSTREAM_FIELDS", "Resolver", "job_context"]

# Fields that may read `jobs.X.outputs`; they are rendered when X has finished.
UPSTREAM_FIELDS = frozenset({"run", "args", "parameters", "env", "matrix"})
_TEXT_FIELDS = ("run", "shell", "script", "interpreter", "notebook", "kernel", "workdir", "host")
_TEXT_FIELDS_SET = frozenset(_TEXT_FIELDS)
_TEMPLATE_FIELDS = frozenset({*_TEXT_FIELDS, "args", "inputs", "needs", "env", "parameters"})
# checked by ccspec.spec.checks
PATH_FIELDS = frozenset({"script", "notebook", "inputs", "workdir"})


def job_context(
    workflow: Workflow, name: str, vars: Any, job_name: str, job_id: str, combo: Any
) -> dict[str, Any]:
    return {
        "vars": vars,
        "matrix": combo,
        "workflow": {"name": name, "description": workflow.description or ""},
        "job": {"name": job_name, "id": job_id},
    }


class Resolver(FieldRenderer):
    """One workflow's resolution: `run` resolves all of it; `combinations` and
    `concrete_job` expand one job (resolve_at_launch calls them for a single job)."""

    def __init__(
        self,
        source: Source,
        workflow: Workflow,
        name: str,
        vars: dict[str, Any],
        file: Path,
        invalid: frozenset[str],
    ) -> None:
        super().__init__(source)
        self.workflow = workflow
        self.name = name
        self.vars = vars
        self.file = file
        self.invalid = invalid
        self.hosts: dict[str, Any] = {"local": LocalHost(type="local"), **workflow.hosts}
        self.all_ids: set[str] = set()
        self.default_host = "local"
        self._defaults_templated = nested_template(dict(workflow.defaults.env))

    def run(self) -> tuple[ResolvedWorkflow, list[Diagnostic]]:
        wf = self.workflow
        local = wf.hosts.get("local")
        if local is not None and not isinstance(local, LocalHost):
            self.error(
                ("hosts", "local"),
                "the host name `local` is reserved for this machine (type: local); give this host another name",
                "reserved-host",
                key=True,
            )
            self.hosts["local"] = LocalHost(type="local")
        self.default_host = "local"
        if wf.defaults.host is not None:
            ctx = job_context(wf, self.name, self.vars, "", "", {})
            host, _ = self._template(wf.defaults.host, ("defaults", "host"), ctx, may_defer=False)
            self.default_host = str(host)
            self._check_host(self.default_host, ("defaults", "host"))
        for i, secret in enumerate(wf.secrets):
            if secret not in wf.vars:
                self.error(
                    ("secrets", i),
                    f"secret {secret!r} is not one of the vars; declare it under `vars:`",
                    "unknown-secret",
                )
        groups: dict[str, tuple[str, ...]] = {}
        expanded: list[tuple[str, Job, dict[str, Any] | None]] = []  # combo None: fan-out pending
        owner: dict[str, str] = {}
        for job_name, job in wf.jobs.items():
            combos = self.combinations(job_name, job)
            ids = []
            for combo in combos:
                job_id = job_name if combo is None else matrix_mod.job_id(job_name, combo)
                other = owner.get(job_id)
                if other is not None:
                    where = (
                        f"job {other!r}"
                        if other != job_name
                        else "another combination of this matrix"
                    )
                    self.error(
                        ("jobs", job_name),
                        f"job id {job_id!r} is produced twice (also by {where}); rename a job or change matrix values",
                        "duplicate-id",
                        key=True,
                    )
                    continue
                owner[job_id] = job_name
                ids.append(job_id)
                expanded.append((job_name, job, combo))
            groups[job_name] = tuple(ids)
        self.all_ids = set(owner)
        jobs = [
            self.concrete_job(job_name, job, combo, groups) for job_name, job, combo in expanded
        ]
        resolved = ResolvedWorkflow(
            name=self.name,
            file=self.file,
            base_dir=self.file.parent,
            spec=wf,
            vars=self.vars,
            source=self.source,
            jobs={j.id: j for j in jobs if j is not None},
            hosts=self.hosts,
            groups=groups,
        )
        return resolved, sorted(self.diagnostics.values())

    # -- matrices ---------------------------------------------------------------------

    def combinations(self, job_name: str, job: Job) -> list[dict[str, Any] | None]:
        raw = job.matrix
        if raw is None:
            return [{}]
        path: ValuePath = ("jobs", job_name, "matrix")
        ctx = job_context(self.workflow, self.name, self.vars, job_name, job_name, {})
        if isinstance(raw, str):
            if not has_template(raw):
                self.error(
                    path,
                    'a matrix must be a mapping of lists, or a template such as "{{ jobs.split.outputs.parts }}"',
                    "bad-matrix",
                )
                return []
            value, upstream = self._template(raw, path, ctx, may_defer=True)
            if upstream:
                self._check_upstream(upstream, {str(n) for n in job.needs}, path)
                return [None]
            rendered: Any = value
        else:
            rendered = {}
            for dim, values in raw.items():
                if isinstance(values, str) and has_template(values):
                    values, upstream = self._template(values, (*path, dim), ctx, may_defer=True)
                    if upstream:
                        self._check_upstream(upstream, {str(n) for n in job.needs}, (*path, dim))
                        return [None]
                rendered[dim] = values
        try:
            combos = matrix_mod.combinations(rendered)
        except matrix_mod.MatrixError as exc:
            self.error(
                (*path, *exc.path) if not isinstance(raw, str) else path,
                f"bad matrix: {exc}",
                "bad-matrix",
            )
            return []
        return [*combos] if self._no_secret_in_ids(combos, raw, path) else []

    def _no_secret_in_ids(self, combos: list[dict[str, Any]], raw: Any, path: ValuePath) -> bool:
        """A secret var's value must not become part of job ids (validate, and at launch for
        a matrix taken from upstream outputs)."""
        secrets = {name: secret_values(self.vars, [name]) for name in self.workflow.secrets}
        found = matrix_mod.secret_in_ids(combos, secrets) if secrets else None
        if found is None:
            return True
        dim, name = found
        where = (*path, dim) if isinstance(raw, dict) and dim in raw else path
        self.error(
            where,
            f"matrix dimension {dim!r} takes the value of secret var {name!r}, which would show in job "
            "ids (status files, pictures, the API); key the matrix on something else, such as an index, and "
            "read the secret from vars",
            "secret-in-job-id",
        )
        return False

    # -- one concrete job -------------------------------------------------------------

    def concrete_job(
        self,
        job_name: str,
        job: Job,
        combo: dict[str, Any] | None,
        groups: dict[str, tuple[str, ...]],
    ) -> ResolvedJob | None:
        pending = combo is None
        job_id = job_name if pending else matrix_mod.job_id(job_name, combo or {})
        base: ValuePath = ("jobs", job_name)
        deferred: set[str] = set()
        upstream: set[str] = set()
        templated = self._scan(job, base)
        if not pending and not combo and not templated:  # the common case: nothing to render
            text = {
                f: v
                for f in _TEXT_FIELDS_SET.intersection(job.model_fields_set)
                if (v := getattr(job, f)) is not None
            }
            args = [
                a if isinstance(a, str) else self._as_text(a, (*base, "args", i), "args")
                for i, a in enumerate(job.args)
            ]
            inputs: list[Any] = list(job.inputs)
            needs_raw: list[Any] = list(job.needs)
            env: dict[str, Any] = {**self.workflow.defaults.env, **job.env}
            parameters: Any = dict(job.parameters)
        else:
            ctx = job_context(self.workflow, self.name, self.vars, job_name, job_id, combo or {})
            text, args, inputs, needs_raw, env, parameters = self._rendered(
                job, base, ctx, pending, deferred, upstream
            )

        host = text.get("host") or self.default_host
        if "host" in text and not pending:
            self._check_host(host, (*base, "host"))
        needs = self._needs(job_name, job_id, needs_raw, groups, base)

        d = self.workflow.defaults
        return ResolvedJob(
            id=job_id,
            name=job_name,
            kind=job.kind,
            host=str(host),
            matrix=combo or {},
            run=text.get("run"),
            shell=text.get("shell", d.shell),
            script=text.get("script"),
            args=tuple(args),
            interpreter=text.get("interpreter"),
            notebook=text.get("notebook"),
            parameters=parameters if isinstance(parameters, dict) else {},
            kernel=text.get("kernel"),
            needs=needs,
            inputs=tuple(inputs),
            env=env,
            workdir=text.get("workdir", d.workdir),
            resources=_merge_resources(d.resources, job.resources),
            retries=job.retries if job.retries is not None else (d.retries or 0),
            timeout=job.timeout if job.timeout is not None else d.timeout,
            array=None if job.array is False else ARRAY_MAX if job.array is True else job.array,
            pack=job.pack,
            deferred=frozenset(deferred),
            upstream=frozenset(upstream),
            fanout_pending=pending,
        )

    def _rendered(
        self,
        job: Job,
        base: ValuePath,
        ctx: dict[str, Any],
        pending: bool,
        deferred: set[str],
        upstream: set[str],
    ) -> tuple[dict[str, Any], list[Any], list[Any], list[Any], dict[str, Any], Any]:
        """Render a job's fields. Fields that read upstream outputs stay templates (they are
        added to `deferred`); with `pending` (matrix not known yet) only the syntax is checked."""
        if pending:
            needs_raw: list[Any] = [str(n) for n in job.needs]
        else:
            needs_raw = self._as_list(
                self._template(list(job.needs), (*base, "needs"), ctx, may_defer=False)[0],
                (*base, "needs"),
                "needs",
            )
        listed = set(needs_raw)

        def field(name: str, value: Any, path: ValuePath | None = None) -> tuple[Any, bool]:
            """(rendered value, True when it stays a template for now)."""
            path = path or (*base, name)
            if pending:
                self._syntax_only(value, path)
                return value, True
            rendered, ups = self._template(value, path, ctx, may_defer=name in UPSTREAM_FIELDS)
            if ups:
                deferred.add(name)
                upstream.update(ups)
                self._check_upstream(ups, listed, path)
            return rendered, bool(ups)

        text: dict[str, Any] = {}
        for f in _TEXT_FIELDS:
            raw = getattr(job, f)
            if raw is not None:
                value, waits = field(f, raw)
                text[f] = value if waits else self._as_text(value, (*base, f), f)
        args, waits = field("args", list(job.args))
        if not waits:
            args = self._as_list(args, (*base, "args"), "args")
        inputs, waits = field("inputs", list(job.inputs))
        if not waits:
            inputs = self._as_list(inputs, (*base, "inputs"), "inputs")
        env: dict[str, Any] = {}
        for key, value in {**self.workflow.defaults.env, **job.env}.items():
            path = (*base, "env", key) if key in job.env else ("defaults", "env", key)
            rendered, waits = field("env", value, path)
            env[key] = rendered if waits else self._as_text(rendered, path, "env")
        parameters, _ = field("parameters", dict(job.parameters))
        return text, args, inputs, needs_raw, env, parameters

    def _check_host(self, host: str, path: ValuePath) -> None:
        # a failed template is reported already
        if host in self.hosts or host in self.invalid or has_template(host):
            return
        self.error(
            path,
            f"unknown host {host!r}{suggest(host, [*self.hosts, *self.invalid])}; define it under `hosts:` (local always exists)",
            "unknown-host",
        )

    def _scan(self, job: Job, base: ValuePath) -> bool:
        """Report keys that do not fit the job's kind; return whether the job holds templates.

        One pass over the keys the job sets: this runs for every job of a large spec.
        """
        templated = self._defaults_templated
        kind = job.kind
        for f in job.model_fields_set:
            owner = KIND_OF_FIELD.get(f)
            if owner is not None and owner != kind:
                self.error(
                    (*base, f),
                    f"`{f}` applies only to {owner} jobs, and this is a {kind} job; remove it",
                    "misplaced-key",
                    key=True,
                )
            if not templated and f in _TEMPLATE_FIELDS:
                templated = nested_template(getattr(job, f))
        return templated

    def _needs(
        self,
        job_name: str,
        job_id: str,
        entries: list[Any],
        groups: dict[str, tuple[str, ...]],
        base: ValuePath,
    ) -> tuple[str, ...]:
        out: list[str] = []
        all_ids = self.all_ids
        for i, entry in enumerate(entries):
            entry = str(entry)
            if entry in groups:
                targets = groups[entry]
            elif entry in all_ids:
                targets = (entry,)
            elif entry in self.invalid:
                continue  # already reported where that job is defined
            else:
                choices = [*groups, *all_ids, *self.invalid]
                hint = suggest(entry, choices) or "; check the name under `jobs:`"
                self.error(
                    (*base, "needs", i),
                    f"job {job_name!r} needs unknown job {entry!r}{hint}",
                    "unknown-need",
                )
                continue
            if entry == job_name or job_id in targets:
                self.error(
                    (*base, "needs", i),
                    f"job {job_name!r} needs itself; remove {entry!r} from its needs",
                    "cycle",
                )
                continue
            out.extend(t for t in targets if t not in out)
        return tuple(out)

    def _check_upstream(self, upstream: set[str], needs: set[str], path: ValuePath) -> None:
        for ref in sorted(upstream - needs):
            self.error(
                path,
                f"the template reads jobs.{ref}.outputs, but {ref!r} is not in this job's needs; add it to `needs:` so its outputs exist first",
                "upstream-not-needed",
            )


_NO_RESOURCES = Resources()


def _merge_resources(default: Resources | None, own: Resources | None) -> Resources:
    if default is None:
        return own or _NO_RESOURCES
    if own is None:
        return default
    return default.model_copy(update={k: getattr(own, k) for k in own.model_fields_set})
