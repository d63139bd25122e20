"""Accounts: sign in/out, password change, open sign-up (off by default), admin user management."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sketch2face.db.models import ROLE_ADMIN, ROLE_INVESTIGATOR, ROLES, User, utcnow
from sketch2face.services import audit
from sketch2face.services import users as user_accounts
from sketch2face.services.accounts import (
    hash_password,
    needs_rehash,
    normalise_username,
    verify_password,
)
from sketch2face.web.database import get_session
from sketch2face.web.extensions import get_settings
from sketch2face.web.first_start import sign_in_hint
from sketch2face.web.forms import (
    LoginForm,
    PasswordChangeForm,
    PasswordResetForm,
    RegisterForm,
    RoleForm,
    UserCreateForm,
)
from sketch2face.web.security import throttle
from sketch2face.web.security.sessions import end_all_sessions, end_session, start_session
from sketch2face.web.security.tokens import revoke_all_tokens

bp = Blueprint("auth", __name__)
F = TypeVar("F", bound=Callable[..., Any])


class DuplicateUsernameError(ValueError):
    """The username is taken."""


def admin_required(view: F) -> F:
    """Allow only signed-in admins (others get 403)."""

    @wraps(view)
    @login_required
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_admin:
            abort(403, description="This page is for administrators.")
        return view(*args, **kwargs)

    return cast(F, wrapped)


def create_user(
    session: Session, username: str, password: str, role: str = ROLE_INVESTIGATOR
) -> User:
    """Add and commit a user; raises DuplicateUsernameError (also under a concurrent insert)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    name = normalise_username(username)
    if user_accounts.username_taken(session, name):
        raise DuplicateUsernameError(f"The username '{name}' is already taken; choose another.")
    user = User(username=name, password_hash=hash_password(password), role=role)
    session.add(user)
    try:
        session.flush()
    except IntegrityError as exc:  # two admins creating the same name at once
        session.rollback()
        raise DuplicateUsernameError(
            f"The username '{name}' is already taken; choose another."
        ) from exc
    return user


def _safe_next(target: str | None) -> str:
    """Only same-site relative redirects after sign-in (no open redirect)."""
    if target:
        parts = urlsplit(target)
        if (
            not parts.scheme
            and not parts.netloc
            and target.startswith("/")
            and not target.startswith("//")
        ):
            return target
    return url_for("studio.new")


def set_password(session: Session, user: User, new_password: str) -> int:
    """Give ``user`` a new password (own change or an administrator's reset; the caller audits
    and commits): every session of the account ends and every API token is revoked, since
    either may have been obtained with the old password. Returns the number of revoked tokens."""
    user.password_hash = hash_password(new_password)
    user.password_changed_at = utcnow()
    end_all_sessions(user)
    return revoke_all_tokens(session, user)


def _login_page(form: LoginForm, status: int = 200) -> Any:
    return (
        render_template(
            "login.html",
            form=form,
            open_signup=get_settings().open_signup,
            # no account yet: how to create the first administrator, to the server's own machine
            first_admin_command=sign_in_hint(get_session(), request),
        ),
        status,
    )


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """Sign in; failed attempts back off per account at an address and per address (throttle.py)."""
    if current_user.is_authenticated:
        return redirect(url_for("studio.new"))
    form = LoginForm()
    if form.validate_on_submit():
        settings = get_settings()
        session = get_session()
        name = normalise_username(form.username.data or "")
        address = request.remote_addr or "unknown"
        held = throttle.check(session, name, address)
        if held is not None:  # checked before the password: guessing on gains nothing
            audit.record(
                session, audit.SIGN_IN_FAILED, None, username=name[:64], reason="throttled"
            )
            session.commit()
            flash(held.message, "error")
            response = make_response(_login_page(form, 429))
            response.headers["Retry-After"] = str(held.retry_after_s)
            return response
        user = user_accounts.user_by_username(session, name)
        ok = verify_password(user.password_hash if user else None, form.password.data or "")
        if user is None or not ok or not user.is_active:
            throttle.record_failure(
                session,
                name,
                address,
                account_failures=settings.login_account_failures,
                address_failures=settings.login_address_failures,
            )
            audit.record(session, audit.SIGN_IN_FAILED, None, username=name[:64])
            session.commit()
            flash("Wrong username or password, or the account is disabled.", "error")
            return _login_page(form, 401)
        if needs_rehash(user.password_hash):
            user.password_hash = hash_password(form.password.data or "")
        throttle.record_success(session, name, address)
        audit.record(session, audit.SIGN_IN, user)
        session.commit()
        start_session(user)
        return redirect(_safe_next(request.args.get("next")))
    return _login_page(form)


@bp.post("/logout")
@login_required
def logout() -> Any:
    """Sign out (POST + CSRF, so a link elsewhere cannot sign you out).

    The account's session nonce is rotated, so a copy of this cookie taken earlier stops working
    too (and so do the account's sessions in other browsers).
    """
    session = get_session()
    user: User = current_user._get_current_object()
    end_all_sessions(user)
    audit.record(session, audit.SIGN_OUT, user)
    session.commit()
    end_session()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/password", methods=["GET", "POST"])
@login_required
def password() -> Any:
    """Change one's password; other sessions end and the account's API tokens are revoked."""
    form = PasswordChangeForm()
    if form.validate_on_submit():
        user: User = current_user._get_current_object()
        if not verify_password(user.password_hash, form.current_password.data or ""):
            form.current_password.errors.append("The current password is wrong.")
            return render_template("password.html", form=form), 400
        session = get_session()
        revoked = set_password(session, user, form.new_password.data or "")
        audit.record(session, audit.PASSWORD_CHANGE, user, tokens_revoked=revoked)
        session.commit()
        start_session(user)  # this browser goes on, under the new nonce
        message = "Your password was changed. Your other sessions were signed out"
        if revoked:
            tokens = "API token was" if revoked == 1 else "API tokens were"
            message += f" and your {revoked} {tokens} revoked; create new ones on API tokens"
        flash(message + ".", "success")
        return redirect(url_for("studio.new"))
    return render_template("password.html", form=form), 400 if form.errors else 200


@bp.route("/register", methods=["GET", "POST"])
def register() -> Any:
    """Open sign-up, only when SKETCH2FACE_OPEN_SIGNUP is on; new accounts are investigators."""
    if not get_settings().open_signup:
        abort(404, description="Accounts are created by an administrator.")
    form = RegisterForm()
    if form.validate_on_submit():
        session = get_session()
        try:
            user = create_user(session, form.username.data or "", form.password.data or "")
        except DuplicateUsernameError as exc:
            form.username.errors.append(str(exc))
            return render_template("register.html", form=form), 409
        audit.record(session, audit.USER_CREATE, user, via="open_signup")
        session.commit()
        start_session(user)
        return redirect(url_for("studio.new"))
    return render_template("register.html", form=form), 400 if form.errors else 200


@bp.route("/admin/users", methods=["GET", "POST"])
@admin_required
def users() -> Any:
    """Admin: list accounts and create new ones."""
    session = get_session()
    form = UserCreateForm()
    status = 200
    if form.validate_on_submit():
        try:
            user = create_user(
                session, form.username.data or "", form.password.data or "", form.role.data
            )
        except DuplicateUsernameError as exc:
            form.username.errors.append(str(exc))
            status = 409
        else:
            audit.record(
                session, audit.USER_CREATE, current_user, new_user=user.username, role=user.role
            )
            session.commit()
            flash(f"Account '{user.username}' created.", "success")
            return redirect(url_for("auth.users"))
    elif form.errors:
        status = 400
    return _users_page(form, status)


def _users_page(form: UserCreateForm | None = None, status: int = 200) -> Any:
    """The accounts list with the create form (a fresh one unless given) and per-account actions."""
    accounts = user_accounts.all_users(get_session())
    form = form if form is not None else UserCreateForm(formdata=None)
    return render_template("users.html", form=form, users=accounts, roles=ROLES), status


def _other_active_admins(session: Session, user: User) -> int:
    """Active administrators besides ``user``; their rows stay locked until the commit
    (PostgreSQL), so two administrators demoting each other at once cannot both succeed."""
    return user_accounts.count_other_active_admins(session, user)


def _flash_form_errors(form: Any) -> None:
    for errors in form.errors.values():
        for error in errors:
            flash(error, "error")


@bp.post("/admin/users/<int:user_id>/active")
@admin_required
def set_active(user_id: int) -> Any:
    """Admin: enable or disable an account (disabling signs it out everywhere)."""
    session = get_session()
    user = session.get(User, user_id) or abort(404)
    if user.id == current_user.id:
        flash("You cannot disable your own account.", "error")
        return redirect(url_for("auth.users"))
    if (
        request.form.get("active") != "1"
        and user.is_admin
        and not _other_active_admins(session, user)
    ):
        flash(f"'{user.username}' is the last active administrator; it stays enabled.", "error")
        return _users_page(status=409)
    user.is_active = request.form.get("active") == "1"
    if not user.is_active:
        end_all_sessions(user)
    audit.record(
        session, audit.USER_UPDATE, current_user, target=user.username, active=user.is_active
    )
    session.commit()
    flash(f"Account '{user.username}' {'enabled' if user.is_active else 'disabled'}.", "success")
    return redirect(url_for("auth.users"))


@bp.post("/admin/users/<int:user_id>/password")
@admin_required
def reset_password(user_id: int) -> Any:
    """Admin: give another account a new password. As with a password change, every session of
    the account ends and its API tokens are revoked (``set_password``)."""
    session = get_session()
    user = session.get(User, user_id) or abort(404)
    if user.id == current_user.id:
        flash("Change your own password on the Password page.", "error")
        return redirect(url_for("auth.password"))
    form = PasswordResetForm()
    if not form.validate_on_submit():
        _flash_form_errors(form)
        return _users_page(status=400)
    revoked = set_password(session, user, form.new_password.data or "")
    audit.record(
        session, audit.PASSWORD_RESET, current_user, target=user.username, tokens_revoked=revoked
    )
    session.commit()
    tokens = "API token was" if revoked == 1 else "API tokens were"
    flash(
        f"Password of '{user.username}' reset: the account was signed out everywhere and its "
        f"{revoked} {tokens} revoked. Give them the new password in person or by phone.",
        "success",
    )
    return redirect(url_for("auth.users"))


@bp.post("/admin/users/<int:user_id>/role")
@admin_required
def set_role(user_id: int) -> Any:
    """Admin: make an account an administrator or an investigator; the last active
    administrator keeps the role."""
    session = get_session()
    user = session.get(User, user_id) or abort(404)
    form = RoleForm()
    if not form.validate_on_submit():
        _flash_form_errors(form)
        return _users_page(status=400)
    role = form.role.data
    if role == user.role:
        flash(f"'{user.username}' is already an {role}.", "info")
        return redirect(url_for("auth.users"))
    if user.is_admin and not _other_active_admins(session, user):
        flash(
            f"'{user.username}' is the last active administrator; make another account an "
            "administrator first.",
            "error",
        )
        return _users_page(status=409)
    previous, user.role = user.role, role
    audit.record(
        session,
        audit.USER_UPDATE,
        current_user,
        target=user.username,
        role=role,
        previous_role=previous,
    )
    session.commit()
    now = "an administrator" if role == ROLE_ADMIN else "an investigator"
    flash(f"'{user.username}' is now {now}.", "success")
    if user.id == current_user.id:  # no longer an administrator: the users page is closed now
        return redirect(url_for("studio.new"))
    return redirect(url_for("auth.users"))
