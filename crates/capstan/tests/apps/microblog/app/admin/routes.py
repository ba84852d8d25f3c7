from app.admin import bp


@bp.route("/static/report")
def report():
    return "a view under the static prefix"
