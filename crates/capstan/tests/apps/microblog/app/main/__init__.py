from flask import Blueprint

# A blueprint with its own static folder, served under /main-static.
bp = Blueprint("main", __name__, static_folder="static", static_url_path="/main-static")

from app.main import routes  # noqa: E402,F401
