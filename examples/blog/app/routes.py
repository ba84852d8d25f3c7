import sqlalchemy as sa
from flask import Blueprint, abort, current_app, jsonify, render_template, request
from flask_babel import get_locale, gettext as _

from app import db
from app.models import Post

bp = Blueprint("main", __name__)


@bp.get("/")
def index():
    posts = db.session.scalars(sa.select(Post).order_by(Post.id.desc()).limit(20)).all()
    return render_template("index.html", language=str(get_locale()), heading=_("Latest posts"), posts=posts)


@bp.post("/posts")
def create_post():
    fields = request.get_json(silent=True) or request.form
    body = fields.get("body", "")
    if not body.strip():
        abort(400, "a post needs a body")
    post = Post(body=body)
    post.title = fields.get("title")  # migration 0002
    db.session.add(post)
    db.session.commit()
    current_app.tasks.enqueue("app.tasks.count_words", post.id)
    return jsonify(post.as_dict()), 201


@bp.get("/posts/<int:post_id>")
def show_post(post_id):
    post = db.session.get(Post, post_id) or abort(404)
    return jsonify(post.as_dict())


@bp.get("/health")
def health():
    # Up means the database answers, not only that Python imported.
    db.session.execute(sa.text("SELECT 1"))
    return "ok"
