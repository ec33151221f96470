"""Expand a shape-checked workflow into concrete jobs: matrices, templates, defaults, needs.

Called by `ccspec.spec.validate` (and so by plan/apply). Every problem becomes a diagnostic
that points at the spec line it comes from; the resolver goes on after a problem so one run
reports them all. It reads no files itself: file checks live in `ccspec.spec.checks` (called
here for jobs rendered at launch).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ccspec.errors import Diagnostic
from ccspec.redact import secret_values
from ccspec.spec import matrix as matrix_mod
from ccspec.spec.checks import check_launch_files
from ccspec.spec.models import Job, LocalHost, Resources, Workflow
from ccspec.spec.resolved import ResolvedJob, ResolvedWorkflow
from ccspec.spec.source import Source, ValuePath
from ccspec.spec.templating import CONTEXT_NAMES, TemplateProblem, analyze, has_template, render

__all__ = [
    "UPSTREAM_FIELDS",
    "job_context",
    "resolve",
    "resolve_at_launch",
    "suggest",
    "upstream_context",
]

# Fields that may read `jobs.X.outputs`; they are rendered when X has finished.
UPSTREAM_FIELDS = frozenset({"run", "args", "parameters", "env", "matrix"})
_JINJA_GLOBALS = frozenset(
    {
        "range",
        "dict",
        "lipsum",
        "cycler",
        "joiner",
        "namespace",
        "loop",
        "true",
        "false",
        "none",
        "True",
        "False",
        "None",
    }
)
_TEXT_FIELDS = ("run", "shell", "script", "interpreter", "notebook", "kernel", "workdir", "host")
_TEXT_FIELDS_SET = frozenset(_TEXT_FIELDS)
_TEMPLATE_FIELDS = frozenset({*_TEXT_FIELDS, "args", "inputs", "needs", "env", "parameters"})
# checked by ccspec.spec.checks
_PATH_FIELDS = frozenset({"script", "notebook", "inputs", "workdir"})
_KIND_OF_FIELD = {
    "args": "script",
    "interpreter": "script",
    "shell": "run",
    "parameters": "notebook",
    "kernel": "notebook",
}


def suggest(word: str, choices: Any) -> str:
    """` (did you mean 'x'?)` or an empty string."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def job_context(
    workflow: Workflow, name: str, vars: Any, job_name: str, job_id: str, combo: Any
) -> dict[str, Any]:
    return {
        "vars": vars,
        "matrix": combo,
        "workflow": {"name": name, "description": workflow.description or ""},
        "job": {"name": job_name, "id": job_id},
    }


def resolve_at_launch(
    workflow: ResolvedWorkflow, job: ResolvedJob, upstream: dict[str, Any]
) -> tuple[list[ResolvedJob], list[str]]:
    """Render a job again now that the jobs it needs have finished: fields that read
    `jobs.X.outputs`, and a matrix taken from an upstream output (one job per combination).

    Returns the concrete jobs and the problems (as messages) that stop them from launching,
    among them the file checks of `validate` (a path may lead outside the repository only now).
    """
    resolver = _Resolver(
        workflow.source,
        workflow.spec,
        workflow.name,
        dict(workflow.vars),
        workflow.file,
        frozenset(),
    )
    resolver.upstream = upstream
    resolver._all_ids = set(workflow.jobs)
    resolver.default_host = job.host
    definition = workflow.spec.jobs[job.name]
    combos = (
        resolver._combinations(job.name, definition) if job.fanout_pending else [dict(job.matrix)]
    )
    groups = {**workflow.groups}
    jobs = [
        j
        for combo in combos
        if combo is not None
        if (j := resolver._job(job.name, definition, combo, groups)) is not None
    ]
    problems = [d.message for d in resolver.diagnostics.values()]
    if not problems and (job.fanout_pending or job.deferred & _PATH_FIELDS):
        # paths rendered only now obey the rules validate applied to the others
        problems = [d.message for d in check_launch_files(workflow, jobs)]
    return jobs, problems


def upstream_context(
    workflow: ResolvedWorkflow, job: ResolvedJob, outputs: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """`jobs` as templates see it: `jobs.X.outputs` for every job X in `needs` (by name or id).

    For a matrix job, `jobs.train.outputs` is the list of its members' outputs in id order,
    and `jobs.train.by_id` maps each member id to its outputs."""
    definition = workflow.spec.jobs[job.name]
    out: dict[str, Any] = {}
    for entry in definition.needs:
        members = workflow.groups.get(entry)
        if members is not None and (len(members) != 1 or members[0] != entry):
            out[entry] = {
                "outputs": [outputs.get(m, {}) for m in members],
                "by_id": {m: outputs.get(m, {}) for m in members},
            }
        else:
            out[entry] = {"outputs": outputs.get(entry, {}), "id": entry}
    return out


def resolve(
    source: Source,
    workflow: Workflow,
    *,
    name: str,
    vars: dict[str, Any],
    file: Path,
    invalid: frozenset[str] = frozenset(),
) -> tuple[ResolvedWorkflow, list[Diagnostic]]:
    """`invalid` names jobs and hosts that failed the shape check (already reported)."""
    return _Resolver(source, workflow, name, vars, file, invalid).run()


class _Resolver:
    def __init__(
        self,
        source: Source,
        workflow: Workflow,
        name: str,
        vars: dict[str, Any],
        file: Path,
        invalid: frozenset[str],
    ) -> None:
        self.source = source
        self.workflow = workflow
        self.name = name
        self.vars = vars
        self.file = file
        self.invalid = invalid
        self.diagnostics: dict[tuple[int, int, str], Diagnostic] = {}
        self.hosts: dict[str, Any] = {"local": LocalHost(type="local"), **workflow.hosts}
        self._all_ids: set[str] = set()
        self.upstream: dict[str, Any] | None = None  # set when rendering at launch time
        self.default_host = "local"
        self._defaults_templated = _nested_template(dict(workflow.defaults.env))

    def error(self, path: ValuePath, message: str, code: str, *, key: bool = False) -> None:
        d = self.source.diagnostic(path, message, code, key=key)
        self.diagnostics.setdefault((d.line, d.col, d.message), d)

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
            combos = self._combinations(job_name, job)
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
        self._all_ids = set(owner)
        jobs = [self._job(job_name, job, combo, groups) for job_name, job, combo in expanded]
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

    def _combinations(self, job_name: str, job: Job) -> list[dict[str, Any] | None]:
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

    def _job(
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
            owner = _KIND_OF_FIELD.get(f)
            if owner is not None and owner != kind:
                self.error(
                    (*base, f),
                    f"`{f}` applies only to {owner} jobs, and this is a {kind} job; remove it",
                    "misplaced-key",
                    key=True,
                )
            if not templated and f in _TEMPLATE_FIELDS:
                templated = _nested_template(getattr(job, f))
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
        all_ids = self._all_ids
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

    # -- templates --------------------------------------------------------------------

    def _template(
        self, value: Any, path: ValuePath, ctx: dict[str, Any], *, may_defer: bool
    ) -> tuple[Any, set[str]]:
        """Render every template inside `value`. Returns (value, upstream jobs it waits for)."""
        if isinstance(value, str):
            if not has_template(value):
                return value, set()
            info = self._analyze(value, path)
            if info is None:
                return value, set()
            if info.jobs and self.upstream is not None:
                ctx = {**ctx, "jobs": self.upstream}
            elif info.jobs:
                if not may_defer:
                    self.error(
                        path,
                        f"`{path[2] if len(path) > 2 else path[-1]}` cannot use upstream outputs (jobs.{sorted(info.jobs)[0]}); only run, args, parameters, env and matrix can",
                        "upstream-not-allowed",
                    )
                    return value, set()
                return value, set(info.jobs)
            if not self._names_ok(info, path, ctx):
                return value, set()
            try:
                return render(value, ctx), set()
            except TemplateProblem as p:
                self.error(
                    path,
                    p.message + _where(path) if p.code == "template-sandbox" else p.message,
                    p.code,
                )
                return value, set()
        if isinstance(value, dict):
            out: dict[Any, Any] = {}
            ups: set[str] = set()
            for k, v in value.items():
                out[k], u = self._template(v, (*path, k), ctx, may_defer=may_defer)
                ups |= u
            return out, ups
        if isinstance(value, list):
            items: list[Any] = []
            ups = set()
            for i, v in enumerate(value):
                r, u = self._template(v, (*path, i), ctx, may_defer=may_defer)
                items.append(r)
                ups |= u
            return items, ups
        return value, set()

    def _syntax_only(self, value: Any, path: ValuePath) -> None:
        if isinstance(value, str) and has_template(value):
            self._analyze(value, path)
        elif isinstance(value, dict):
            for k, v in value.items():
                self._syntax_only(v, (*path, k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                self._syntax_only(v, (*path, i))

    def _analyze(self, value: str, path: ValuePath) -> Any:
        try:
            return analyze(value)
        except TemplateProblem as p:
            where = f" (line {p.line} of the template)" if p.line > 1 else ""
            self.error(path, p.message + where, p.code)
            return None

    def _names_ok(self, info: Any, path: ValuePath, ctx: dict[str, Any]) -> bool:
        ok = True
        for unknown in sorted(info.names - CONTEXT_NAMES - _JINJA_GLOBALS):
            self.error(
                path,
                f"undefined template variable {unknown!r}{suggest(unknown, CONTEXT_NAMES)}; templates can use vars, matrix, workflow, job and jobs",
                "template-undefined",
            )
            ok = False
        for var in sorted(info.vars - set(ctx["vars"])):
            self.error(
                path,
                f"undefined variable vars.{var}{suggest(var, ctx['vars'])}; declare it under `vars:` or pass --var {var}=VALUE",
                "template-undefined",
            )
            ok = False
        for dim in sorted(info.matrix - set(ctx["matrix"])):
            if ctx["matrix"]:
                self.error(
                    path,
                    f"the matrix has no dimension {dim!r} (it has {', '.join(ctx['matrix'])})",
                    "template-undefined",
                )
            else:
                self.error(
                    path,
                    f"template uses matrix.{dim} but this job has no `matrix:`",
                    "template-undefined",
                )
            ok = False
        return ok

    # -- coercions --------------------------------------------------------------------

    def _as_text(self, value: Any, path: ValuePath, what: str) -> Any:
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return str(value)
        self.error(path, f"`{what}` must render to text, got {type(value).__name__}", "bad-type")
        return str(value)

    def _as_list(self, value: Any, path: ValuePath, what: str) -> list[str]:
        """Text items; a lone `{{ expression }}` that yields a list adds one item per element."""
        items: list[str] = []
        for i, item in enumerate(value if isinstance(value, list) else [value]):
            parts = item if isinstance(item, (list, tuple)) else [item]
            items.extend(self._as_text(p, (*path, i), what) for p in parts)
        return items


def _nested_template(value: Any) -> bool:
    if isinstance(value, str):
        return has_template(value)
    if isinstance(value, dict):
        return any(_nested_template(v) for v in value.values())
    if isinstance(value, list):
        return any(_nested_template(v) for v in value)
    return False


_NO_RESOURCES = Resources()


def _merge_resources(default: Resources | None, own: Resources | None) -> Resources:
    if default is None:
        return own or _NO_RESOURCES
    if own is None:
        return default
    return default.model_copy(update={k: getattr(own, k) for k in own.model_fields_set})


def _where(path: ValuePath) -> str:
    """` in field F of job J` for a problem found while rendering the template at `path`."""
    if len(path) >= 3 and path[0] == "jobs":
        field = ".".join(str(p) for p in path[2:])
        return f" (in field {field!r} of job {path[1]!r})"
    return f" (in {'.'.join(str(p) for p in path)!r})"
