"""Hostile templates through the public validate path: every sandbox escape and every way
to exhaust time or memory we found is refused with a diagnostic at the template's
file:line:col, leaks nothing, and ends quickly. Each spec is validated in a worker thread,
as `ccspec serve` and `ccspec watch` do, where no signal-based time limit could help."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ccspec.spec.budget import overall
from ccspec.spec.validate import SpecReport, validate_file, validate_text

SPEC = """\
version: 1
vars: {canary: c4n4ry-value}
jobs:
  a:
    run: |-
      echo TEMPLATE
"""

SANDBOX, ERROR, UNDEFINED = "template-sandbox", "template-error", "template-undefined"
STEPS = "exceeded 1,000,000 steps"
BIG = "more than 100,000"
UNSAFE = "is unsafe"

# (case id, template, diagnostic code, a piece of its message)
CASES: list[tuple[str, str, str, str]] = [
    # attribute escapes, through the globals Jinja provides and the values a spec has
    ("str-mro", "{{ ''.__class__.__mro__ }}", SANDBOX, UNSAFE),
    ("subclasses", "{{ ''.__class__.__mro__[1].__subclasses__() }}", SANDBOX, UNSAFE),
    ("list-base", "{{ [].__class__.__base__.__subclasses__() }}", SANDBOX, UNSAFE),
    ("vars-globals", "{{ vars.__init__.__globals__ }}", UNDEFINED, "vars.__init__"),
    ("workflow-globals", "{{ workflow.__init__.__globals__ }}", SANDBOX, UNSAFE),
    ("job-class", "{{ job.__class__.__mro__ }}", SANDBOX, UNSAFE),
    ("cycler-globals", "{{ cycler.__init__.__globals__ }}", SANDBOX, UNSAFE),
    ("cycler-instance", "{{ cycler(1, 2).__class__ }}", SANDBOX, UNSAFE),
    ("joiner-globals", "{{ joiner.__init__.__globals__ }}", SANDBOX, UNSAFE),
    ("joiner-call", "{{ joiner().__call__ }}", SANDBOX, UNSAFE),
    ("lipsum-globals", "{{ lipsum.__globals__ }}", SANDBOX, UNSAFE),
    ("lipsum-os", "{{ lipsum.__globals__['os'] }}", SANDBOX, UNSAFE),
    ("namespace-init", "{{ namespace.__init__ }}", SANDBOX, UNSAFE),
    ("namespace-globals", "{{ namespace.__init__.__globals__ }}", SANDBOX, UNSAFE),
    ("namespace-instance", "{{ namespace(a=1).__class__ }}", SANDBOX, UNSAFE),
    ("dict-mro", "{{ dict.mro() }}", SANDBOX, UNSAFE),
    ("dict-init", "{{ dict.__init__ }}", SANDBOX, UNSAFE),
    ("range-globals", "{{ range.__globals__ }}", SANDBOX, UNSAFE),
    ("method-self", "{{ workflow.items.__self__ }}", SANDBOX, UNSAFE),
    ("loop-class", "{% for x in [1] %}{{ loop.__class__ }}{% endfor %}", SANDBOX, UNSAFE),
    ("loop-private", "{% for x in [1] %}{{ loop._iterator }}{% endfor %}", SANDBOX, UNSAFE),
    ("loop-outside", "{{ loop.index }}", UNDEFINED, "loop"),
    ("self", "{{ self }}", SANDBOX, "`self`"),
    ("self-context", "{{ self._TemplateReference__context }}", SANDBOX, "`self`"),
    ("config", "{{ config.items() }}", UNDEFINED, "'config'"),
    ("request", "{{ request }}", UNDEFINED, "'request'"),
    ("attr-filter", "{{ 1|attr('__class__') }}", SANDBOX, UNSAFE),
    ("attr-chain", "{{ vars|attr('__class__')|attr('__mro__') }}", UNDEFINED, "__mro__"),
    ("map-attribute", "{{ [vars]|map(attribute='__class__')|list }}", SANDBOX, UNSAFE),
    ("selectattr", "{{ [vars]|selectattr('__class__')|list }}", SANDBOX, UNSAFE),
    ("sort-attribute", "{{ [1, 2]|sort(attribute='__class__') }}", SANDBOX, UNSAFE),
    ("groupby", "{{ [1]|groupby('__class__') }}", SANDBOX, UNSAFE),
    ("dict-update", "{{ workflow.update({'name': 1}) }}", SANDBOX, "unsafe"),
    ("list-append", "{{ [].append(1) }}", SANDBOX, "unsafe"),
    ("generator-frame", "{{ (vars.canary|map('upper')).gi_frame.f_globals }}", SANDBOX, UNSAFE),
    ("generator-code", "{{ ([1, 2]|reverse).gi_code }}", SANDBOX, UNSAFE),
    ("range-iter", "{{ range(3).__iter__ }}", SANDBOX, UNSAFE),
    # format-string tricks
    ("format-attr", "{{ '{0.__class__}'.format(1) }}", SANDBOX, UNSAFE),
    ("format-globals", "{{ '{0.__init__.__globals__}'.format(cycler) }}", SANDBOX, UNSAFE),
    ("format-item", "{{ '{0[__class__]}'.format(vars) }}", SANDBOX, UNSAFE),
    ("format-map", "{{ '{x.__class__}'.format_map({'x': 1}) }}", SANDBOX, UNSAFE),
    ("percent-class", "{{ '%s' % workflow.__class__ }}", SANDBOX, UNSAFE),
    ("percent-width", "{{ '%999999999s' % 'x' }}", SANDBOX, BIG),
    ("percent-star", "{{ '%*s' % (999999999, 'x') }}", SANDBOX, "`*`"),
    ("percent-precision", "{{ '%.999999999f' % 1.0 }}", SANDBOX, BIG),
    ("format-width", "{{ '{:999999999}'.format('x') }}", SANDBOX, BIG),
    ("format-nested", "{{ '{0:{1}}'.format('x', 999999999) }}", SANDBOX, "`{:{}}`"),
    ("format-precision", "{{ '{:.999999999f}'.format(1.0) }}", SANDBOX, BIG),
    ("format-filter", "{{ '%99999s%99999s'|format('a', 'b') }}", SANDBOX, BIG),
    # files: only what the spec itself says
    ("include", "{% include '/etc/passwd' %}", SANDBOX, "{% include %}"),
    ("include-project", "{% include 'templates/sbatch.sh.j2' %}", SANDBOX, "{% include %}"),
    ("import", "{% import '/etc/passwd' as p %}", SANDBOX, "{% import %}"),
    ("from-import", "{% from '/etc/passwd' import x %}", SANDBOX, "{% from ... import %}"),
    ("extends", "{% extends '/etc/passwd' %}", SANDBOX, "{% extends %}"),
    # parsing: nesting deep enough to exhaust the parser's recursion
    (
        "deep-parentheses",
        "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}",
        "template-syntax",
        "nests too deeply",
    ),
    (
        "deep-ifs",
        "{% if 1 %}" * 3000 + "x" + "{% endif %}" * 3000,
        "template-syntax",
        "nests too deeply",
    ),
    (
        "deep-lists",
        "{{ " + "[" * 3000 + "1" + "]" * 3000 + " }}",
        "template-syntax",
        "nests too deeply",
    ),
    # time: loops, calls and recursion
    (
        "nested-loops",
        "{% for a in 'x' * 99999 %}{% for b in 'x' * 99999 %}{% endfor %}{% endfor %}",
        SANDBOX,
        STEPS,
    ),
    (
        "nested-ranges",
        "{% for a in range(99999) %}{% for b in range(99999) %}{% endfor %}{% endfor %}",
        SANDBOX,
        STEPS,
    ),
    (
        "filtered-loop",
        "{% for a in range(99999) %}{% for b in range(99999) if false %}{% endfor %}{% endfor %}",
        SANDBOX,
        STEPS,
    ),
    ("huge-range", "{{ range(10**9)|list }}", SANDBOX, "range()"),
    (
        "macro-doubling",
        "{% macro m(n) %}{% if n %}{{ m(n-1) }}{{ m(n-1) }}{% endif %}{% endmacro %}{{ m(40) }}",
        SANDBOX,
        STEPS,
    ),
    (
        "macro-recursion",
        "{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}",
        ERROR,
        "recursion",
    ),
    (
        "recursive-loop",
        "{% for x in range(9) recursive %}{{ loop('x' * 99999) }}{% endfor %}",
        ERROR,
        "recursion",
    ),
    ("slice-many", "{{ ('x' * 99)|slice(10**9)|list }}", SANDBOX, BIG),
    ("lipsum-huge", "{{ lipsum(10**9) }}", SANDBOX, "lipsum()"),
    ("striptags-quadratic", "{{ ('<' * 99999)|striptags }}", SANDBOX, "striptags()"),
    # memory: values built bigger than the limit, or before they could be weighed
    ("str-repeat", "{{ 'x' * 10**9 }}", SANDBOX, BIG),
    ("bytes-repeat", "{{ 'x'.encode() * 10**9 }}", SANDBOX, BIG),
    ("list-repeat", "{{ [1] * 10**9 }}", SANDBOX, BIG),
    ("shared-refs", "{{ ['x' * 99999] * 99999 }}", SANDBOX, BIG),
    (
        "literal-bomb",
        "{% set a = 'x' * 99999 %}{% set b = [a, a, a, a, a, a] %}{{ [b, b, b, b]|length }}",
        SANDBOX,
        BIG,
    ),
    ("dict-bomb", "{% set a = 'x' * 60000 %}{{ dict(p=a, q=a)|length }}", SANDBOX, BIG),
    ("power", "{{ 2 ** 100000 }}", SANDBOX, "exponent"),
    ("power-of-power", "{{ (9 ** 999) ** 999 }}", SANDBOX, "bits"),
    (
        "squaring",
        "{% set ns = namespace(n=3) %}{% for i in range(40) %}{% set ns.n = ns.n * ns.n %}{% endfor %}{{ ns.n }}",
        SANDBOX,
        "bits",
    ),
    (
        "concat-doubling",
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        SANDBOX,
        BIG,
    ),
    (
        "plus-doubling",
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
        SANDBOX,
        BIG,
    ),
    (
        "namespace-bomb",
        "{% set a = 'x' * 99999 %}{% set ns = namespace() %}{% set ns.a = a %}{% set ns.b = a %}{{ ns }}",
        SANDBOX,
        BIG,
    ),
    (
        "output-loop",
        "{% for i in range(99999) %}{{ 'x' * 99999 }}{% endfor %}",
        SANDBOX,
        "writes more than",
    ),
    (
        "text-loop",
        "{% for i in range(99999) %}" + "y" * 100 + "{% endfor %}",
        SANDBOX,
        "writes more than",
    ),
    (
        "macro-text",
        "{% macro m() %}"
        + "z" * 1000
        + "{% endmacro %}{% for i in range(99999) %}{% set x = m() %}{% endfor %}",
        SANDBOX,
        "writes more than",
    ),
    ("center-filter", "{{ 'x'|center(10**9) }}", SANDBOX, "width"),
    ("center-method", "{{ 'x'.center(10**9) }}", SANDBOX, "center()"),
    ("ljust", "{{ 'x'.ljust(10**9) }}", SANDBOX, "ljust()"),
    ("zfill", "{{ '1'.zfill(10**9) }}", SANDBOX, "zfill()"),
    ("bytes-ljust", "{{ 'x'.encode().ljust(10**9) }}", SANDBOX, "ljust()"),
    ("to-bytes", "{{ (10).to_bytes(10**9, 'big') }}", SANDBOX, "to_bytes()"),
    ("expandtabs", r"{{ ('\t' * 9999).expandtabs(99999) }}", SANDBOX, "expandtabs()"),
    ("translate", "{{ ('x' * 99999).translate({120: 'y' * 99}) }}", SANDBOX, "translate()"),
    ("replace-method", "{{ ('a' * 99999).replace('a', 'bb') }}", SANDBOX, "replace()"),
    ("replace-filter", "{{ ('a' * 60000)|replace('a', 'bb') }}", SANDBOX, "replace()"),
    ("join-method", "{{ ('y' * 99999).join(['a'] * 99) }}", SANDBOX, "join"),
    ("join-filter", "{{ (['a'] * 99)|join('y' * 50000) }}", SANDBOX, "join"),
    ("indent-string", r"{{ ('\n' * 99999)|indent('x' * 99999, blank=True) }}", SANDBOX, BIG),
    ("indent-width", r"{{ ('x\n' * 9)|indent(10**9) }}", SANDBOX, "indented"),
    ("batch-fill", "{{ [1]|batch(10**9, 'x')|list }}", SANDBOX, "batch()"),
    ("map-center", "{{ ('x' * 99999)|map('center', 99999)|list|length }}", SANDBOX, BIG),
    ("sum-lists", "{{ [[1], [2]]|sum(start=[]) }}", SANDBOX, "sum()"),
    ("tojson-indent", "{{ [1, 2]|tojson(indent=10**9) }}", SANDBOX, "tojson()"),
]

LEAKS = (
    "<class",
    "<function",
    "<module",
    "<built-in",
    "root:",
    "__builtins__",
    "c4n4ry",
    "TemplateReference",
)


def in_a_thread(validate: Callable[[], SpecReport]) -> SpecReport:
    """Run `validate` in a worker thread (a daemon: a hang fails the test, not the run)."""
    reports: list[SpecReport] = []
    worker = threading.Thread(target=lambda: reports.append(validate()), daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert reports, "validate did not finish within 60 s"
    return reports[0]


def validate_in_a_thread(repo: Path, template: str) -> tuple[SpecReport, float]:
    path = repo / "flow.yaml"
    path.write_text(SPEC.replace("TEMPLATE", template))
    started = time.monotonic()
    report = in_a_thread(lambda: validate_file(path))
    return report, time.monotonic() - started


@pytest.mark.parametrize(
    ("template", "code", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_hostile_template_is_refused(repo: Path, template: str, code: str, fragment: str) -> None:
    report, took = validate_in_a_thread(repo, template)
    assert not report.valid, "the template rendered"
    (problem,) = report.diagnostics
    assert (problem.line, problem.col, problem.code) == (5, 10, code), problem
    assert fragment in problem.message, problem.message
    assert not any(leak in problem.message for leak in LEAKS), problem.message
    assert took < 10, f"validate took {took:.1f} s"


def template(case: str) -> str:
    return next(c[1] for c in CASES if c[0] == case)


def test_the_case_ids_are_distinct() -> None:
    assert len({c[0] for c in CASES}) == len(CASES)


def test_a_budget_message_names_the_field_and_the_job(repo: Path) -> None:
    report, _ = validate_in_a_thread(repo, template("nested-loops"))
    assert report.diagnostics[0].message == (
        "unsafe template rejected by the sandbox: the template exceeded 1,000,000 steps (loop items and calls)"
        " (in field 'run' of job 'a')"
    )


def test_ordinary_templates_still_render_in_a_thread(repo: Path) -> None:
    text = (
        "{% for x in ['a', 'b'] %}{{ x }}-{{ loop.index }} {% endfor %}{{ 'n' ~ 1 }} {{ [1, 2]|join(',') }} "
        "{{ '%s-%03d' % ('p', 7) }} {{ '{}!'.format('hi') }} {{ ['a']|map('upper')|join }} {{ range(3)|list }} "
        "{{ vars.canary|q }} {{ {'k': 1}|tojson }} {{ 'x'|center(3) }}|"
    )
    path = repo / "flow.yaml"
    path.write_text(SPEC.replace("TEMPLATE", text))
    report = in_a_thread(lambda: validate_file(path))
    assert report.valid, report.diagnostics
    assert report.workflow is not None
    (job,) = report.workflow.jobs.values()
    assert job.run == 'echo a-1 b-2 n1 1,2 p-007 hi! A [0, 1, 2] c4n4ry-value {"k": 1}  x |'


def test_one_deadline_bounds_all_the_templates_of_a_spec(repo: Path) -> None:
    """What `ccspec serve` does with an upload: each template is within its own limits, but
    together they run longer than the deadline for the whole spec."""
    loop = "{% for a in range(999) %}{% for b in range(999) %}{% endfor %}{% endfor %}"
    text = "version: 1\njobs:\n" + "".join(
        f'  j{i}: {{run: "{loop}echo {i}"}}\n' for i in range(30)
    )
    started = time.monotonic()
    with overall(0.5):
        report = validate_text(text, repo / "many.yaml")
    took = time.monotonic() - started
    assert not report.valid and took < 5, took
    assert any("ran longer than 0.5 s in all" in d.message for d in report.diagnostics)


def test_setting_the_cancel_event_stops_rendering_at_once(repo: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    with overall(60, cancel):
        report = validate_text(SPEC.replace("TEMPLATE", template("nested-loops")), repo / "c.yaml")
    assert any("cancelled" in d.message for d in report.diagnostics), report.diagnostics


def test_a_missing_output_still_takes_a_default(repo: Path) -> None:
    path = repo / "flow.yaml"
    path.write_text(
        "version: 1\njobs:\n  up: {run: echo}\n  down:\n    needs: [up]\n"
        "    run: \"echo {{ jobs.up.outputs.acc | default('none') }} {{ workflow.nope | default(1) }}\"\n"
    )
    report = in_a_thread(lambda: validate_file(path))
    assert report.valid, report.diagnostics
