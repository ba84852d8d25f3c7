from flask import Flask, request
from flask_babel import Babel
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from redis import Redis
from rq import Queue

from config import Config

db = SQLAlchemy()
migrate = Migrate()
babel = Babel()


def pick_language():
    return request.accept_languages.best_match(Config.LANGUAGES)


def create_app(config_class=Config):
    app = Flask(__name__)
    app.config.from_object(config_class)
    db.init_app(app)
    migrate.init_app(app, db)
    babel.init_app(app, locale_selector=pick_language)
    app.tasks = Queue("blog", connection=Redis.from_url(app.config["REDIS_URL"]))

    from app import cli, routes

    app.register_blueprint(routes.bp)
    cli.register(app)
    return app


from app import models  # noqa: E402,F401
