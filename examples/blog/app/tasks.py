"""Jobs the `tasks` process (an rq worker) runs, outside any request."""

from app import create_app, db
from app.models import Post


def count_words(post_id):
    app = create_app()
    with app.app_context():
        post = db.session.get(Post, post_id)
        post.words = len(post.body.split())
        db.session.commit()
        return post.words
