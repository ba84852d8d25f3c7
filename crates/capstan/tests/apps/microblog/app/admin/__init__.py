from flask import Blueprint

# Its static folder sits under a prefix the blueprint also routes
# dynamically (/admin/static/<path> and /admin/static/report): the front
# must leave that prefix to Flask.
bp = Blueprint("admin", __name__, static_folder="static")

from app.admin import routes  # noqa: E402,F401
