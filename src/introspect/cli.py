"""Command line: ``introspect reproduce`` runs the figure notebooks; ``introspect figures`` lists
them; ``introspect capture`` fills a workdir with a recipe's captures (sharded under torchrun);
``introspect train`` trains a recipe's model into a workdir (resumable)."""

from __future__ import annotations

import argparse
import functools
import html
import json
import os
import re
import sys
import time
import traceback
import urllib.parse
from pathlib import Path

__all__ = ["main", "reproduce", "capture_cmd", "train_cmd"]


def _figure_ids(selection: str | None) -> list[str]:
    from .figures import FIGURES

    if not selection:
        return list(FIGURES)
    ids = []
    for token in selection.replace(",", " ").split():
        matches = [f for f in FIGURES if f == token or f.startswith(token.rstrip(".") + ".")]
        if not matches:
            raise SystemExit(f"unknown figure {token!r}; `introspect figures` lists them.")
        ids += [m for m in matches if m not in ids]
    return ids


# --------------------------------------------------------------------------- script-safe HTML
#
# A figure page is a notebook exported by nbconvert. Outputs carry user text (class names from an
# ImageFolder or a class index file, layer and dataset names) into <script> elements: the widget
# state and widget views as JSON, bokeh's ``show`` as JavaScript holding the document JSON. The
# HTML parser ends a <script> element at the first ``</script`` whatever the JavaScript or JSON
# around it, and ``<!--`` followed by ``<script`` inside one changes where it ends; so a class
# named ``</script><script>alert(1)</script>`` ran in the reader's browser. See _to_html.

_JSON_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_JSON_ESCAPE_RE = re.compile("[<>&\u2028\u2029]")
# ``</script`` and ``<!--``, with the backslashes before them (see _script_safe_js)
_JS_HAZARD_RE = re.compile(r"(\\*)<(?=/script|!--)", re.IGNORECASE)
_JS_MIMETYPES = ("application/javascript", "text/javascript", "application/x-javascript")
_SCRIPT_RE = re.compile(r"<script\b([^>]*)>(.*?)</script", re.IGNORECASE | re.DOTALL)
_JSON_TYPE_RE = re.compile(r"""\btype\s*=\s*["']?[\w.+-]*/(?:[\w.-]*\+)?json\b""", re.IGNORECASE)


def _script_safe_json(obj, **kwargs) -> str:
    """``json.dumps`` whose text can sit inside a <script> element (nbconvert's ``json_dumps``).

    ``<``, ``>``, ``&`` (and U+2028/9) become ``\\u003c``, ``\\u003e``, ``\\u0026``: in JSON text
    these characters occur only inside strings, where the escape decodes to the same character,
    so the value is unchanged for ``JSON.parse`` (and for a JavaScript literal) while neither
    ``</script`` nor ``<!--`` can appear.
    """
    text = json.dumps(obj, **kwargs)
    return _JSON_ESCAPE_RE.sub(lambda m: _JSON_ESCAPES[m.group()], text)


def _script_safe_js(code: str) -> str:
    """JavaScript source with ``</script`` and ``<!--`` (any case) rewritten as ``\\u003c/script``.

    Inside a string, template or regular-expression literal (where data such as bokeh's
    document JSON sits) ``\\u003c`` is the same ``<``; in a comment it is inert. An odd run of
    backslashes before the ``<`` (``\\<``, the identity escape of ``<``) loses one, so the
    literal keeps its value. Code outside literals never holds ``</script`` (it would have
    ended the element in the notebook too); ``<!--`` there is a legacy HTML-like comment.
    """

    def sub(m: re.Match) -> str:
        slashes = m.group(1)
        return slashes[: len(slashes) - len(slashes) % 2] + "\\u003c"

    return _JS_HAZARD_RE.sub(sub, code)


def _check_script_blocks(body: str) -> None:
    """Refuse a page whose <script> elements could end early or whose JSON does not parse.

    The last line of defence after the escaping: each element runs from ``<script ...>`` to the
    first ``</script``. One holding ``<!--`` then ``<script`` would be ended elsewhere by a
    browser; a JSON-typed one (``application/...+json``) cut short by an injected ``</script``
    no longer parses. Raises ``ValueError`` (the report then lists the figure as "HTML export
    failed" with a link to the notebook, instead of writing a page that runs the payload).
    """
    for m in _SCRIPT_RE.finditer(body):
        attrs, content = m.group(1), m.group(2)
        lower = content.lower()
        start = lower.find("<!--")
        if start >= 0 and "<script" in lower[start:]:
            raise ValueError(f"unsafe <script{attrs}> element: '<!--' and '<script' inside it")
        if _JSON_TYPE_RE.search(attrs) and content.strip():
            try:
                json.loads(content)
            except ValueError as err:
                raise ValueError(
                    f"<script{attrs}> does not hold valid JSON (cut short by '</script'?): {err}"
                ) from None


def _script_safe_preprocessor():
    from nbconvert.preprocessors import Preprocessor

    class ScriptSafeOutputs(Preprocessor):
        """Make JavaScript outputs (rendered verbatim in a <script>) script-safe."""

        def preprocess_cell(self, cell, resources, index):
            for out in cell.get("outputs", []):
                data = out.get("data") or {}
                for mime in _JS_MIMETYPES:
                    if isinstance(data.get(mime), str):
                        data[mime] = _script_safe_js(data[mime])
            return cell, resources

    return ScriptSafeOutputs()


def _html_exporter():
    """nbconvert's lab HTMLExporter with script-safe JSON and JavaScript outputs (see _to_html),
    without the CDN scripts (require.js, MathJax, mermaid) the figure pages do not use."""
    from nbconvert import HTMLExporter

    template = Path(__file__).with_name("templates") / "report_page.html.j2"
    exporter = HTMLExporter(
        filters={"json_dumps": _script_safe_json},
        template_name="lab",
        template_file=str(template),
    )
    exporter.register_preprocessor(_script_safe_preprocessor(), enabled=True)
    return exporter


def _to_html(ipynb: Path, target: Path) -> None:
    """Write the executed notebook ``ipynb`` as an HTML page that user text cannot script.

    nbconvert renders text outputs escaped, but it puts three kinds of output verbatim inside
    <script> elements, and class names and other user text reach all three: the widget state
    (``application/vnd.jupyter.widget-state+json``, e.g. a Dropdown's options, a
    jupyter_bokeh document), widget views, and JavaScript outputs (bokeh's ``show`` embeds
    the document JSON in code). Three layers keep ``</script`` and ``<!--`` out of them:

    1. the template's ``json_dumps`` filter is :func:`_script_safe_json`: ``<``, ``>`` and
       ``&`` in the JSON become ``\\u003c`` etc., the same JSON value;
    2. a preprocessor rewrites ``</script`` and ``<!--`` in JavaScript outputs as
       ``\\u003c/script`` / ``\\u003c!--`` (:func:`_script_safe_js`), the same string in a
       JavaScript literal;
    3. :func:`_check_script_blocks` checks the finished page (no ``<!--<script`` in a script,
       every JSON script parses) and raises ``ValueError`` rather than write an unsafe page.

    ``text/html`` and markdown outputs stay HTML as the notebook showed them: their authors
    (the figure and widget code) escape user text with ``html.escape``.
    """
    import nbformat

    nb = nbformat.read(ipynb, as_version=4)
    body, _ = _html_exporter().from_notebook_node(nb)
    _check_script_blocks(body)
    target.write_text(body)


def _relative_href(name: str) -> str:
    """A file name as a relative URL: all but letters, digits and ``_.-~/`` percent-encoded.

    So no scheme (``javascript:`` has its colon encoded), query, fragment or host
    (leading slashes are dropped) can come from a name.
    """
    return urllib.parse.quote(str(name).lstrip("/"), safe="/")


_VERDICT_CLASS = {"reproduced": "yes", "not reproduced": "no", "not testable": "na"}


def _claims_cell(claims: list[dict] | None) -> str:
    """The verdict column of a figure's row: one line per claim, the numbers on hover."""
    from .figures import format_numbers

    if not claims:
        return '<span class="na">no verdict (the figure did not finish)</span>'
    items = []
    for c in claims:
        why = f": {c['reason']}" if c.get("reason") else ""
        nums = format_numbers(c.get("numbers") or {})
        items.append(
            f'<li class="{_VERDICT_CLASS.get(c["verdict"], "na")}"><b>{html.escape(c["verdict"])}'
            f"</b>{html.escape(why)} - {html.escape(c['claim'])} <i>({html.escape(c['where'])})"
            f"</i>{'<br><small>' + html.escape(nums) + '</small>' if nums else ''}</li>"
        )
    return "<ul>" + "".join(items) + "</ul>"


def scoreboard(rows: list[dict]) -> dict:
    """Per paper: how many claims were reproduced, not reproduced, not testable."""
    from .figures import FIGURES, VERDICTS

    board: dict[str, dict[str, int]] = {}
    for r in rows:
        fig = FIGURES.get(r["id"])
        paper = fig.paper if fig is not None else str(r["id"]).split(".", 1)[0]
        counts = board.setdefault(paper, {v: 0 for v in (*VERDICTS, "figures without verdict")})
        if not r.get("claims"):
            counts["figures without verdict"] += 1
        for c in r.get("claims") or []:
            counts[c["verdict"]] += 1
    return board


def environment(device: str | None = None, data_root: str | None = None) -> dict:
    """What a run ran on: versions, device, threads, commit, data root (for the report)."""
    import importlib.metadata as md
    import platform
    import subprocess

    env = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    for pkg in ("introspect-widgets", "torch", "torchvision", "timm", "numpy", "scikit-learn",
                "advertorch", "bokeh", "zarr", "papermill"):  # fmt: skip
        try:
            env[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            env[pkg] = "not installed"
    try:
        import torch

        env["torch threads"] = torch.get_num_threads()
        env["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    except Exception as err:  # the report must not fail on it
        env["torch"] = f"unavailable ({err})"
    env["device (--device)"] = device or "each profile's own"
    env["data root"] = (
        str(Path(data_root).resolve())
        if data_root
        else os.environ.get("INTROSPECT_DATA", "not set")
    )
    try:
        here = Path(__file__).resolve().parent
        commit = subprocess.run(["git", "-C", str(here), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=10)  # fmt: skip
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--", "."],
                               capture_output=True, text=True, timeout=10)  # fmt: skip
        env["commit"] = (commit.stdout.strip() + (" (uncommitted changes)" if dirty.stdout.strip()
                         else "")) if commit.returncode == 0 else "not a git checkout"  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        env["commit"] = "unknown"
    return env


def _index(
    out: Path, profile: str, rows: list[dict], started: float, env: dict | None = None
) -> Path:
    ok = sum(r["status"] == "ok" for r in rows)
    trs = []
    for r in rows:
        params = html.escape(json.dumps(r["parameters"], indent=1, default=str))
        # links are file names beside index.html: percent-encoded (no "javascript:" scheme or
        # other URL syntax can come from a name), then escaped for the attribute
        links = " ".join(
            f'<a href="{html.escape(_relative_href(v))}">{html.escape(k)}</a>'
            for k, v in r["links"].items()
        )
        err = f'<pre class="err">{html.escape(r["error"])}</pre>' if r.get("error") else ""
        status = html.escape(r["status"])
        trs.append(
            f'<tr class="{status}"><td>{html.escape(r["id"])}</td><td>{html.escape(r["title"])}</td>'
            f"<td>{status}</td><td>{_claims_cell(r.get('claims'))}</td><td>{r['seconds']:.1f}</td>"
            f"<td>{links}{err}</td>"
            f"<td><details><summary>parameters</summary><pre>{params}</pre></details></td></tr>"
        )
    board = scoreboard(rows)
    cols = ["reproduced", "not reproduced", "not testable", "figures without verdict"]
    score = "".join(
        f"<tr><td>{html.escape(p)}</td>" + "".join(f"<td>{c[k]}</td>" for k in cols) + "</tr>"
        for p, c in board.items()
    )
    env_rows = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>"
        for k, v in (env or {}).items()
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>introspect report ({html.escape(profile)})</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;
padding:4px 8px;vertical-align:top}}tr.failed td{{background:#fdd}}pre.err{{color:#a00;max-width:60em;
white-space:pre-wrap}}ul{{margin:0;padding-left:1.2em;max-width:48em}}li.yes b{{color:#060}}li.no b{{color:#a00}}
li.na b,span.na{{color:#777}}small{{color:#555}}</style></head><body>
<h1>introspect-widgets: figures ({html.escape(profile)} profile)</h1>
<p>{ok} of {len(rows)} figures ran; total {time.time() - started:.0f} s. Each figure checks the
paper's claims on this run: <b>reproduced</b>, <b>not reproduced</b>, or <b>not testable</b>
(with the reason, e.g. a setting of this profile that cannot show the effect).</p>
<h2>Scoreboard: the papers' claims on this run</h2>
<table><tr><th>paper</th>{"".join(f"<th>{html.escape(k)}</th>" for k in cols)}</tr>{score}</table>
<h2>Figures</h2>
<table><tr><th>figure</th><th>what it shows</th><th>status</th><th>the paper's claims: verdict</th><th>seconds</th><th>output</th><th>parameters</th></tr>
{"".join(trs)}</table>
<h2>Environment</h2><table>{env_rows}</table>
<p>Claims and verdicts of every figure: <a href="claims.json">claims.json</a>.</p></body></html>"""
    path = out / "index.html"
    path.write_text(page)
    (out / "claims.json").write_text(
        json.dumps(
            {
                "profile": profile,
                "environment": env or {},
                "scoreboard": board,
                "figures": {
                    r["id"]: {"status": r["status"], "claims": r.get("claims")} for r in rows
                },  # fmt: skip
            },
            indent=1,
            default=str,
        )
    )
    return path


def install_bokehjs(folder: Path) -> Path:
    """Copy BokehJS (``js/bokeh*.min.js`` of the installed bokeh) into ``folder`` once.

    Every page of a report then loads it from there by a relative path: the folder works
    offline and can be zipped or served as it is. Found without importing bokeh (the core
    does not import the Jupyter layer).
    """
    import importlib.util
    import shutil

    spec = importlib.util.find_spec("bokeh")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("bokeh is not installed: `pip install bokeh` to write a report.")
    src = Path(list(spec.submodule_search_locations)[0]) / "server" / "static" / "js"
    files = sorted(src.glob("bokeh*.min.js"))
    if not files:
        raise RuntimeError(f"no BokehJS files in {src}; reinstall bokeh.")
    dst = Path(folder) / "js"
    dst.mkdir(parents=True, exist_ok=True)
    for f in files:
        target = dst / f.name
        if not target.is_file() or target.stat().st_size != f.stat().st_size:
            tmp = target.with_suffix(".part")
            shutil.copyfile(f, tmp)
            tmp.replace(target)  # never a half-copied file under the final name
    return Path(folder)


@functools.lru_cache(maxsize=1)
def _ipc_kernel_manager():
    """A kernel manager whose kernels talk over IPC sockets in a private temporary folder.

    Over TCP (the default) every ipykernel >= 7 prints "Kernel is running over TCP without
    encryption" on each figure's line; local IPC sockets are what it recommends, and they
    are not reachable from the network.
    """
    import atexit
    import shutil
    import tempfile

    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    sockets = tempfile.mkdtemp(prefix="introspect-kernels-")
    atexit.register(shutil.rmtree, sockets, ignore_errors=True)

    class IPCKernelManager(AsyncKernelManager):
        @default("transport")
        def _default_transport(self):
            return "ipc"

        @default("ip")
        def _default_ip(self):
            return os.path.join(sockets, "kernel")

    return IPCKernelManager


def _read_claims(path: Path) -> list[dict] | None:
    """The verdicts a figure's notebook wrote (None if it wrote none: the run removes the
    file before each notebook, so a file left by an earlier run is never read)."""
    try:
        return json.loads(path.read_text())["claims"]
    except (OSError, ValueError, KeyError):
        return None


def parse_overrides(items: list[str] | None) -> dict[str, dict]:
    """``--set [FIGURE:]NAME=YAML`` items as ``{figure id or "*": {name: value}}``.

    The value is YAML (``eps=[0.1,0.2]``, ``n_attack=50``, ``model=mnist_cnn``); without a
    ``FIGURE:`` prefix it applies to every selected figure that has the parameter.
    """
    import yaml

    out: dict[str, dict] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"--set {item!r}: write NAME=VALUE or FIGURE:NAME=VALUE.")
        fid, _, name = key.strip().rpartition(":")
        try:
            out.setdefault(fid or "*", {})[name] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise SystemExit(f"--set {item!r}: the value is not YAML ({err}).") from None
    return out


def _check_overrides(overrides: dict[str, dict], ids: list[str]) -> None:
    """Refuse an override that no selected figure takes (a typo would silently do nothing)."""
    from .figures import get_figure

    for fid, values in overrides.items():
        targets = ids if fid == "*" else [fid]
        if fid != "*" and fid not in ids:
            raise SystemExit(f"--set {fid}:...: {fid} is not among the selected figures.")
        for name in values:
            if not any(name in get_figure(t).params for t in targets):
                raise SystemExit(
                    f"--set {name}=...: no selected figure has a parameter {name!r} "
                    "(`introspect figures` and the notebooks' parameter cells list them)."
                )


def _figure_params(fig, profile, work, out, device, data_root, overrides=None) -> dict:
    """A figure's parameters in a report run: its profile, the run's workdir and folders,
    then the ``--set`` overrides that apply to it."""
    params = fig.profile(profile)
    for scope in ("*", fig.id):
        params.update(
            {k: v for k, v in (overrides or {}).get(scope, {}).items() if k in fig.params}
        )
    params.update(workdir=str(work), save_dir=str(out / "figures"))
    if device:
        params["device"] = device
    if data_root:
        params["data_root"] = str(Path(data_root).resolve())
    return params


# Quick-profile seconds of each paper's figures on 2 quiet cores (2026-12-04), to balance
# the lanes of a parallel report; a paper not listed weighs 10 s per figure.
_PAPER_SECONDS = {"selfintro": 175.0, "telescope": 100.0, "library": 55.0, "manifolds": 52.0}
_LAST_PAPERS = ("compare",)  # cross-lens figures: after every lane, they reuse its stages


def _lanes(ids: list[str], jobs: int) -> list[list[list[str]]]:
    """Phases of lanes of figure ids: the lanes of a phase run side by side.

    A paper's figures stay together and in order (they share trained models, captures,
    maps): in parallel they would wait for each other's locks. Papers go to the lane with
    the least work so far (longest first); the cross-lens figures run last, alone.
    """
    papers: dict[str, list[str]] = {}
    for fid in ids:  # an id is "<paper>.<figure>"
        papers.setdefault(fid.split(".", 1)[0], []).append(fid)
    last = [fid for p in _LAST_PAPERS for fid in papers.pop(p, [])]
    if jobs <= 1 or len(papers) <= 1:
        first = [fid for group in papers.values() for fid in group]
        return [[lane] for lane in (first, last) if lane]
    lanes: list[list[str]] = [[] for _ in range(min(jobs, len(papers)))]
    load = [0.0] * len(lanes)

    def weight(p):
        return _PAPER_SECONDS.get(p, 10.0 * len(papers[p]))

    for p in sorted(papers, key=weight, reverse=True):
        k = load.index(min(load))
        lanes[k] += papers[p]
        load[k] += weight(p)
    return [lanes] + ([[last]] if last else [])


def _run_figure(fid: str, job: dict) -> dict:
    """Execute one figure's notebook with papermill and export it to HTML; its report row."""
    import papermill as pm

    from .figures import get_figure
    from .figures._notebooks import notebook_for

    out, nb_dir = Path(job["out"]), Path(job["nb_dir"])
    fig = get_figure(fid)
    params = _figure_params(fig, job["profile"], Path(job["work"]), out, job["device"],
                            job["data_root"], job["overrides"])  # fmt: skip
    src = nb_dir / "figures" / f"{fid}.ipynb"
    if not src.is_file():  # an installed package without the checkout: use the generated one
        import nbformat

        src = out / "_src" / f"{fid}.ipynb"
        src.parent.mkdir(exist_ok=True)
        nbformat.write(notebook_for(fig), src)
    target = out / f"{fid}.ipynb"
    t0 = time.time()
    row = {"id": fid, "title": fig.title, "parameters": params, "links": {}, "error": None}
    try:
        (out / "figures" / f"{fid}.claims.json").unlink(missing_ok=True)
        pm.execute_notebook(
            str(src),
            str(target),
            parameters=params,
            kernel_name="python3",
            progress_bar=False,
            cwd=str(out),
            execution_timeout=job["timeout"],
            kernel_manager_class=_ipc_kernel_manager(),
        )
        row["status"] = "ok"
    except Exception as err:  # papermill raises PapermillExecutionError with the cell's traceback
        row["status"] = "failed"
        row["error"] = (getattr(err, "ename", "") + ": " + getattr(err, "evalue", "")).strip(
            ": "
        ) or ("".join(traceback.format_exception_only(type(err), err)).strip())
    row["seconds"] = time.time() - t0
    row["claims"] = _read_claims(out / "figures" / f"{fid}.claims.json")
    if target.is_file():
        row["links"]["notebook"] = target.name
        try:
            _to_html(target, out / f"{fid}.html")
            row["links"]["html"] = f"{fid}.html"
        except Exception as err:  # keep the report going
            row["error"] = (row["error"] or "") + f" (HTML export failed: {err})"
    return row


def default_jobs(profile: str) -> int:
    """Figure notebooks run side by side: 2 for the quick profile on >= 2 cores, else 1.

    A figure notebook spends seconds single-threaded (kernel start, importing torch and
    scikit-learn, the HTML export) for each figure; two lanes overlap those with the other
    lane's work. The paper profile runs one at a time: its figures hold GBs of activations.
    """
    return 2 if profile == "quick" and (os.cpu_count() or 1) >= 2 else 1


def reproduce(
    profile: str = "quick",
    out: str | Path = "reports",
    figures: str | None = None,
    workdir: str | Path | None = None,
    device: str | None = None,
    data_root: str | None = None,
    notebooks: str | Path | None = None,
    timeout: int | None = None,
    overrides: dict[str, dict] | None = None,
    jobs: int | None = None,
) -> int:
    """Execute the figure notebooks with papermill; write an HTML report. Returns the exit code.

    ``overrides`` (:func:`parse_overrides`, the CLI's ``--set``) change parameters of the
    profile: ``{"*": {name: value}}`` for every figure that has ``name``, or keyed by id.

    ``jobs`` (default :func:`default_jobs`): lanes of figures run side by side, each in
    its own process, a paper's figures in order within one lane (see :func:`_lanes`);
    the report lists the figures in registry order whatever order they finish in.

    In a ``torchrun`` job (``WORLD_SIZE`` > 1) every rank first runs the selected figures'
    computations in-process with the capture and attack stages sharded over the ranks
    (:func:`_prepare_sharded`), filling the shared workdir; then rank 0 alone runs the
    notebooks, whose stages are all served from that workdir, and the other ranks exit.
    """
    from .figures import BROKEN
    from .figures._notebooks import repo_notebooks_dir

    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(workdir).resolve() if workdir else out / "work"
    nb_dir = Path(notebooks) if notebooks else repo_notebooks_dir()
    ids = _figure_ids(figures)
    _check_overrides(overrides or {}, ids)
    jobs = default_jobs(profile) if jobs is None else int(jobs)
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1; got {jobs}.")
    if _world_size() > 1:
        rank = _prepare_sharded(ids, profile, work, out, device, data_root, overrides)
        if rank != 0:
            return 0
        jobs = 1  # the notebooks only read what the ranks stored
    started = time.time()
    if os.environ.get("INTROSPECT_BOKEH_RESOURCES", "").lower() not in ("inline", "cdn"):
        # the default: BokehJS copied once into the report, every page pointing at it
        os.environ["INTROSPECT_BOKEH_STATIC"] = str(install_bokehjs(out / "static"))
    env = environment(device, data_root)
    env["figure lanes"] = str(jobs)
    for name, err in BROKEN.items():
        print(f"figure module {name} failed to import: {err}", file=sys.stderr)
    job = dict(out=str(out), nb_dir=str(nb_dir), profile=profile, work=str(work),
               device=device, data_root=data_root, overrides=overrides, timeout=timeout)  # fmt: skip
    order = {fid: i for i, fid in enumerate(ids)}
    done: dict[str, dict] = {}

    def finished(row):
        done[row["id"]] = row
        print(
            f"[{len(done)}/{len(ids)}] {row['id']} {row['status']} ({row['seconds']:.1f} s)"
            + (f": {row['error']}" if row["error"] else ""),
            flush=True,
        )
        _index(out, profile, sorted(done.values(), key=lambda r: order[r["id"]]), started, env)

    for phase in _lanes(ids, jobs):
        if len(phase) == 1:
            for fid in phase[0]:
                print(f"{fid} ...", flush=True)
                finished(_run_figure(fid, job))
            continue
        import multiprocessing as mp
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        # one worker per lane; a lane's next figure is submitted when its last one ends, so
        # its figures run in order and the index grows as figures finish
        ctx = mp.get_context("spawn")
        with ProcessPoolExecutor(len(phase), mp_context=ctx) as pool:
            pending = {pool.submit(_run_figure, lane[0], job): (lane, 0) for lane in phase}
            while pending:
                ready, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in ready:
                    lane, k = pending.pop(fut)
                    finished(fut.result())
                    if k + 1 < len(lane):
                        pending[pool.submit(_run_figure, lane[k + 1], job)] = (lane, k + 1)
    rows = sorted(done.values(), key=lambda r: order[r["id"]])
    index = _index(out, profile, rows, started, env)
    failed = [r["id"] for r in rows if r["status"] != "ok"]
    print(f"report: {index}  ({len(rows) - len(failed)} ok, {len(failed)} failed)")
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed or BROKEN else 0


def _world_size() -> int:
    from .distributed import in_torchrun

    return int(os.environ.get("WORLD_SIZE", "1")) if in_torchrun() else 1


def _prepare_sharded(ids, profile, work, out, device, data_root, overrides=None) -> int:
    """Every rank: compute the figures with sharded captures and attacks; returns the rank.

    The figures' ``compute`` runs on every rank in the same order. Capture and attack
    stages (``pipeline.captured`` / ``attacked``) are collective: each rank does its
    batches. Every other cached stage (training, SOM, library, introspector) is computed
    once, by the rank that takes its workdir lock first, and loaded by the others. A
    figure that fails is reported and left to the notebook run (which shows the error).
    """
    import torch.distributed as dist

    from .distributed import SHARDED, group, sharding
    from .figures import get_figure

    grp = group(True, device or "cpu", where="reproduce")
    say = print if grp.rank == 0 else (lambda *a, **k: None)
    say(f"sharded stages over {grp.world} ranks, workdir {work}")
    for i, fid in enumerate(ids, 1):
        fig = get_figure(fid)
        params = _figure_params(fig, profile, work, out, device, data_root, overrides)
        t0, before = time.time(), dict(SHARDED)
        try:
            with sharding():
                fig.compute(**params)
            status = "ok"
        except Exception as err:  # the notebook run reports it with its traceback
            status = f"failed ({type(err).__name__}: {err})"
        grp.barrier()
        calls = {k: v - before.get(k, 0) for k, v in SHARDED.items() if v > before.get(k, 0)}
        sharded = ", ".join(f"{v} {k}" for k, v in calls.items()) or "nothing"
        say(f"[{i}/{len(ids)}] stages of {fid}: {status} ({time.time() - t0:.1f} s; sharded: "
            f"{sharded})")  # fmt: skip
    grp.barrier()
    dist.destroy_process_group()
    return grp.rank


def _torchrun(nproc: int, argv: list[str]) -> int:
    """Run ``python -m introspect <argv>`` under ``torchrun --standalone --nproc_per_node``."""
    import subprocess

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={int(nproc)}", "-m", "introspect", *argv]  # fmt: skip
    print("running: " + " ".join(cmd), file=sys.stderr)
    return subprocess.call(cmd)


def _strip_launcher(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in ("--launcher", "--nproc"):
            skip = True
            continue
        if a.startswith(("--launcher=", "--nproc=")):
            continue
        out.append(a)
    return out


def capture_cmd(args) -> int:
    """``introspect capture``: a recipe's captures (and optional PGD) into the workdir."""
    from .distributed import in_torchrun
    from .study import Study

    distributed = in_torchrun()
    study = Study.from_recipe(
        args.recipe, workdir=args.workdir, device=args.device, data_root=args.data_root,
        layers=args.layers.split(",") if args.layers else None, n_per_class=args.n_per_class,
        progress=True, batch_size=args.batch_size, distributed=distributed,
    )  # fmt: skip
    splits = args.split.split(",") if args.split else list(study.datasets)
    stores = {s: study.capture(args.reducer, s) for s in splits}
    attack = None
    if args.attack_n:
        attack = study.attack("pgd", eps=args.eps, n=args.attack_n, nb_iter=args.nb_iter)
    rank = int(os.environ.get("RANK", "0")) if distributed else 0
    if rank == 0:
        for split, st in stores.items():
            print(f"{split}: {st.path} ({st.n} inputs, layers {', '.join(st.layers)})")
        if attack is not None:
            print(repr(attack))
    if distributed:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    return 0


def train_cmd(args) -> int:
    """``introspect train``: a recipe's model trained (or found) in the workdir, then tested.

    The run shows a progress bar over epochs and checkpoints every epoch in the workdir;
    after an interruption (Ctrl-C, a lost job) the same command resumes after the last
    finished epoch. The figures that use the recipe find the trained model when they get
    the same workdir, data root and seed.
    """
    from .recipes import load_recipe, recipe, recipe_data
    from .training import evaluate

    r = recipe(args.recipe)
    # the key of the trained model holds the data root as `reproduce` passes it: resolved
    data_root = str(Path(args.data_root).resolve()) if args.data_root else None
    train = r.get("train")
    if train is None:
        raise SystemExit(
            f"recipe {args.recipe!r} is not trained here (pretrained weights or a random "
            "initialisation): there is nothing to train."
        )
    print(f"{args.recipe}: {r['model']} on {r.get('dataset', 'digits')}; {train}", flush=True)
    started = time.time()
    try:
        model = load_recipe(
            args.recipe, workdir=args.workdir, device=args.device, data_root=data_root,
            seed=args.seed, progress=True,
        )  # fmt: skip
    except KeyboardInterrupt:
        print(
            "\ninterrupted: the finished epochs are checkpointed in the workdir; run the same "
            "command again to resume.",
            file=sys.stderr,
        )
        return 130
    hist, best = model.history_, model.history_["best_epoch"]
    ran = len(hist["train_loss"])
    line = f"{ran} of {train['epochs']} epochs trained (ready in {time.time() - started:.0f} s)"
    if hist["val_acc"]:
        last = hist["val_acc"][best if best is not None else -1]
        line += f"; validation accuracy {last:.4f} at epoch {best} (kept)"
    print(line)
    if not args.no_test:
        test = recipe_data(args.recipe, "test", data_root=data_root)
        acc = evaluate(model, test, device=args.device)["accuracy"]
        print(f"test accuracy {acc:.4f} on {len(test)} images")
    return 0


def markdown_table() -> str:
    """The README's figure table, from the registry."""
    from .figures import FIGURES

    rows = ["| paper | figure | notebook | what it shows |", "|---|---|---|---|"]
    for fid, fig in FIGURES.items():
        rows.append(
            f"| {fig.paper} | `{fid}` | [notebooks/figures/{fid}.ipynb](notebooks/figures/{fid}.ipynb) "
            f"| {fig.title} |"
        )
    return "\n".join(rows)


def _figures_cmd(args) -> int:
    from .figures import BROKEN, FIGURES

    if args.write_notebooks is not None:
        from .figures._notebooks import write_all

        paths = write_all(Path(args.write_notebooks) if args.write_notebooks else None)
        print(f"wrote {len(paths)} files")
        return 0
    if args.markdown:
        print(markdown_table())
        return 0
    for fid, fig in FIGURES.items():
        print(f"{fid:<34} {fig.title}")
    for name, err in BROKEN.items():
        print(f"BROKEN {name}: {err}", file=sys.stderr)
    return 1 if BROKEN else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="introspect", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("reproduce", help="run the figure notebooks and write an HTML report")
    rep.add_argument("--profile", default="quick", choices=["quick", "paper"])
    rep.add_argument("--out", default="reports", help="output folder (index.html, notebooks, HTML)")
    rep.add_argument(
        "--figures", default=None, help="ids or papers, comma separated (default: all)"
    )
    rep.add_argument(
        "--workdir", default=None, help="cache of trained models and captures (default OUT/work)"
    )
    rep.add_argument(
        "--device", default=None, help="cpu, cuda, cuda:1 or auto (default: the profile's)"
    )
    rep.add_argument(
        "--data-root", default=None, help="datasets and weights (default $INTROSPECT_DATA)"
    )
    rep.add_argument(
        "--notebooks", default=None, help="notebooks/ folder (default: the checkout's)"
    )
    rep.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds")
    rep.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="figure notebooks run side by side, a paper's figures in order in one lane "
        "(default: 2 for the quick profile on >= 2 cores, 1 for the paper profile)",
    )
    rep.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="[FIGURE:]NAME=VALUE",
        help="change a parameter of the profile (VALUE is YAML), for every selected figure "
        "that has it or for one figure; repeatable",
    )
    rep.add_argument(
        "--offline",
        action="store_true",
        help="inline BokehJS in every page (each page works alone; larger files). By default "
        "BokehJS is copied once into OUT/static and every page loads it from there, so the "
        "report folder works offline; --cdn loads it from cdn.bokeh.org instead",
    )
    rep.add_argument(
        "--cdn", action="store_true", help="load BokehJS from cdn.bokeh.org (needs internet)"
    )
    rep.add_argument(
        "--launcher",
        choices=["none", "torchrun"],
        default="none",
        help="torchrun: rerun this command under `torchrun --standalone --nproc_per_node "
        "NPROC`, sharding the figures' captures and attacks over NPROC processes",
    )
    rep.add_argument("--nproc", type=int, default=1, help="processes for --launcher torchrun")
    cap = sub.add_parser(
        "capture",
        help="capture a recipe's data (and attack it) into the workdir; sharded under torchrun",
    )
    cap.add_argument("--recipe", required=True, help="e.g. small_cnn@digits (introspect.recipes)")
    cap.add_argument("--split", default=None, help="train, test or both (default: both)")
    cap.add_argument(
        "--reducer", default="codes", choices=["flatten", "codes", "codes_tokens", "gap"]
    )
    cap.add_argument("--layers", default=None, help="comma separated (default: the model's)")
    cap.add_argument("--workdir", default="introspect-work", help="on a shared filesystem")
    cap.add_argument("--device", default="cpu", help="cpu, cuda (cuda:<LOCAL_RANK> per rank)")
    cap.add_argument("--batch-size", type=int, default=128, help="also the store's chunk rows")
    cap.add_argument("--data-root", default=None)
    cap.add_argument("--n-per-class", type=int, default=None)
    cap.add_argument("--attack-n", type=int, default=0, help="PGD-attack this many test inputs")
    cap.add_argument("--eps", type=float, default=8 / 255)
    cap.add_argument("--nb-iter", type=int, default=10)
    trn = sub.add_parser(
        "train",
        help="train a recipe's model into the workdir (progress; an interrupted run resumes)",
    )
    trn.add_argument("--recipe", required=True, help="e.g. net1_mlp@mnist (introspect.recipes)")
    trn.add_argument(
        "--workdir", default="introspect-work", help="the figures' workdir (reproduce: OUT/work)"
    )
    trn.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 or auto")
    trn.add_argument(
        "--data-root", default=None, help="datasets and weights (default $INTROSPECT_DATA)"
    )
    trn.add_argument("--seed", type=int, default=0, help="the figures' seed (default 0)")
    trn.add_argument("--no-test", action="store_true", help="skip the test-set accuracy")
    figs = sub.add_parser("figures", help="list the registered figures")
    figs.add_argument(
        "--write-notebooks",
        nargs="?",
        const="",
        default=None,
        metavar="DIR",
        help="(re)generate notebooks/figures and notebooks/params from the figure modules",
    )
    figs.add_argument("--markdown", action="store_true", help="print the README's figure table")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if args.command == "capture":
        return capture_cmd(args)
    if args.command == "train":
        return train_cmd(args)
    if args.command == "reproduce" and args.launcher == "torchrun":
        if _world_size() > 1:
            raise SystemExit("--launcher torchrun inside a torchrun job: drop --launcher.")
        return _torchrun(args.nproc, _strip_launcher(argv))
    if args.command == "reproduce":
        if args.offline and args.cdn:
            raise SystemExit("--offline and --cdn contradict each other: pick one.")
        if args.offline:
            os.environ["INTROSPECT_BOKEH_RESOURCES"] = "inline"  # inherited by the kernels
        elif args.cdn:
            os.environ["INTROSPECT_BOKEH_RESOURCES"] = "cdn"
        return reproduce(
            args.profile,
            args.out,
            args.figures,
            args.workdir,
            args.device,
            args.data_root,
            args.notebooks,
            args.timeout,
            parse_overrides(args.overrides),
            jobs=args.jobs,
        )
    return _figures_cmd(args)


if __name__ == "__main__":
    sys.exit(main())
