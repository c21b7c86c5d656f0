"""The wire-capture admin API: ``/_admin/capture`` lists the files, ``/<name>`` downloads or deletes one.

Switching capture on and off is the ``wire_capture`` setting (``POST /_admin/settings``). The
files are every worker's (one directory); a name is served only when it has a capture file's
shape and exists there, so nothing else on the disk can be reached through it.
"""

from __future__ import annotations

from flask import jsonify, send_file

from ...gateway import current_gateway
from ..errors import ApiError
from . import admin

bp = admin.admin_blueprint("capture", "/_admin/capture")


def _path(name: str):
    path = current_gateway().capture.path(name)
    if path is None:
        raise ApiError(404, f"no capture file named {name[:100]!r}: GET /_admin/capture lists them", param="name",
                       kind="input")
    return path


@bp.get("")
def files():
    """Whether capture is on, and the capture files, newest first, with their sizes."""
    gw = current_gateway()
    listed = gw.capture.files()
    return jsonify({"enabled": gw.settings.get("wire_capture"), "files": listed,
                    "total_bytes": sum(f["bytes"] for f in listed)})


@bp.get("/<path:name>")
def download(name: str):
    """One capture file, streamed (JSON lines)."""
    return send_file(_path(name), mimetype="application/x-ndjson", as_attachment=True, download_name=name,
                     max_age=0)


@bp.delete("/<path:name>")
def delete(name: str):
    """Delete one capture file (a worker writing it opens a new one)."""
    if not current_gateway().capture.delete(str(_path(name).name)):
        raise ApiError(404, f"no capture file named {name[:100]!r}", param="name", kind="input")
    return jsonify({"deleted": name})


@bp.delete("")
def delete_all():
    """Delete every capture file."""
    capture = current_gateway().capture
    deleted = [f["name"] for f in capture.files() if capture.delete(f["name"])]
    return jsonify({"deleted": len(deleted)})
