"""WTForms for the account pages (CSRF comes from flask-wtf's FlaskForm + CSRFProtect)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, EqualTo, Length, ValidationError

from sketch2face.db.models import ROLE_ADMIN, ROLE_INVESTIGATOR
from sketch2face.services.accounts import normalise_username, password_problem, username_problem


def _username_ok(_form: FlaskForm, field: StringField) -> None:
    if problem := username_problem(normalise_username(field.data or "")):
        raise ValidationError(problem)


def _password_ok(_form: FlaskForm, field: PasswordField) -> None:
    if problem := password_problem(field.data or ""):
        raise ValidationError(problem)


class LoginForm(FlaskForm):
    """Sign in."""

    username = StringField("Username", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


class PasswordChangeForm(FlaskForm):
    """Change one's own password."""

    current_password = PasswordField("Current password", validators=[DataRequired()])
    new_password = PasswordField("New password", validators=[DataRequired(), _password_ok])
    confirm = PasswordField(
        "Repeat new password",
        validators=[DataRequired(), EqualTo("new_password", message="The passwords differ.")],
    )


class UserCreateForm(FlaskForm):
    """Admin: create an account."""

    username = StringField("Username", validators=[DataRequired(), _username_ok])
    password = PasswordField("Initial password", validators=[DataRequired(), _password_ok])
    role = SelectField(
        "Role",
        choices=[ROLE_INVESTIGATOR, ROLE_ADMIN],  # plain values: no deprecated tuple form
        default=ROLE_INVESTIGATOR,
    )


class PasswordResetForm(FlaskForm):
    """Admin: give another account a new password."""

    new_password = PasswordField("New password", validators=[DataRequired(), _password_ok])
    confirm = PasswordField(
        "Repeat new password",
        validators=[DataRequired(), EqualTo("new_password", message="The passwords differ.")],
    )


class RoleForm(FlaskForm):
    """Admin: change an account's role."""

    role = SelectField("Role", choices=[ROLE_INVESTIGATOR, ROLE_ADMIN])


class RegisterForm(FlaskForm):
    """Open sign-up (only when SKETCH2FACE_OPEN_SIGNUP is on)."""

    username = StringField("Username", validators=[DataRequired(), _username_ok])
    password = PasswordField("Password", validators=[DataRequired(), _password_ok])
    confirm = PasswordField(
        "Repeat password",
        validators=[DataRequired(), EqualTo("password", message="The passwords differ.")],
    )


class TokenCreateForm(FlaskForm):
    """Create an API token."""

    name = StringField("Token name", validators=[DataRequired(), Length(max=64)])
