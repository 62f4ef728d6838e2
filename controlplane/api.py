"""The JSON API's plumbing: bearer tokens (`Authorization: Bearer TOKEN`), the `api_view`
decorator (authentication, CSRF for the console's session, method, permission), the one
parser of request bodies
(`parse_body`, typed fields), and JSON error pages for everything under /api/
(`handler400` ... `handler500`, named in controlplane/urls.py).

Every error is `{"error": message, ...}`; a 400 also has `fields`: {name: [messages]}
(`non_field_errors` when the body as a whole is wrong)."""

import functools
import hashlib
import json
import logging
import re
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.utils import timezone
from django.utils.log import log_response
from django.views import defaults

from controlplane.models import ApiToken

TOKEN_PREFIX = "cp_"  # noqa: S105 - a visible marker, not a secret
API_PREFIX = "/api/"


def hash_token(token):
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(user, name=""):
    """Create a token for `user`; return (ApiToken, the plaintext shown once)."""
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name, prefix=plaintext[:12], digest=hash_token(plaintext)
    )
    return token, plaintext


def api_error(status, message, **extra):
    return JsonResponse({"error": message, **extra}, status=status)


def invalid(fields, message=None):
    """400 with a message per field: {"error": ..., "fields": {name: [messages]}}."""
    if message is None:
        named = [name for name in fields if name != "non_field_errors"]
        message = f"Invalid field(s): {', '.join(named)}." if named else next(iter(fields.values()))[0]
    return api_error(400, message, fields=fields)


def authenticate_bearer(request):
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    token = (
        ApiToken.objects.select_related("user")
        .filter(digest=hash_token(value.strip()), revoked_at__isnull=True)
        .first()
    )
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user


class _SessionCsrfCheck(CsrfViewMiddleware):
    """Django's own CSRF check (Origin; Referer under HTTPS; the csrftoken cookie against
    the X-CSRFToken header), refusing in JSON. Overriding `_reject` is how Django's own
    csrf decorators (`requires_csrf_token`) change the refusal."""

    def _reject(self, request, reason):
        response = api_error(
            403,
            f"CSRF check failed: {reason} A request authenticated by the console's session "
            "cookie must send the X-CSRFToken header (from the csrftoken cookie); scripts use "
            "a bearer token.",
        )
        log_response("Forbidden (%s): %s", reason, request.path, response=response, request=request,
                     logger=_csrf_log)
        return response


_csrf_log = logging.getLogger("django.security.csrf")
_csrf_check = _SessionCsrfCheck(lambda request: None)


def api_view(methods, permission=None, public=False):
    """Authenticate by bearer token (or the console session), check the method and
    the role permission (one for every method, or a {method: permission} mapping).
    Answers 401/403/405 as JSON; never redirects. `public`: no authentication (the
    OpenAPI document). controlplane/checks.py refuses to start a process with an API
    route that is not an api_view, or that changes something without a permission.

    A bearer request is exempt from CSRF checks: a page on another origin cannot add
    the Authorization header (that needs CORS, which the API does not grant). A request
    authenticated by the session cookie is checked as the console's forms are, before
    anything else, whatever the method it names (safe methods pass)."""

    def decorator(view):
        @functools.wraps(view)
        def wrapper(request, *args, **kwargs):
            if not public:
                user = authenticate_bearer(request)
                if user is None and request.user.is_authenticated:
                    refused = _csrf_check.process_view(request, None, (), {})
                    if refused is not None:
                        return refused
                    user = request.user
                if user is None:
                    response = api_error(401, "Authentication required: send Authorization: Bearer TOKEN.")
                    response["WWW-Authenticate"] = 'Bearer realm="controlplane"'
                    return response
                request.user = user
            if request.method not in methods:
                response = api_error(405, f"Method {request.method} not allowed.")
                response["Allow"] = ", ".join(methods)
                return response
            needed = permission.get(request.method) if isinstance(permission, dict) else permission
            if needed and not request.user.has_perm(needed):
                return api_error(403, "Your role does not allow this action.")
            return view(request, *args, **kwargs)

        # The middleware skips the view: the wrapper checks cookie-authenticated requests itself.
        wrapper.csrf_exempt = True
        wrapper.api_methods = methods
        wrapper.api_permission = permission
        return wrapper

    return decorator


# --- request bodies ------------------------------------------------------------------

RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII)
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Text:
    """A JSON string field. `required` is only documented here: the form or the
    service function behind the endpoint says what is missing, beside its other
    messages. `null` is the same as leaving an optional field out."""

    max_length: int
    required: bool = False
    min_length: int = 0
    description: str = ""
    examples: tuple = ()

    kind = "a string"

    def accepts(self, value):
        """Whether `value` has this field's JSON type."""
        return isinstance(value, str)

    def clean(self, value):
        """The value to pass on (a string, as the form behind the endpoint takes it)."""
        return value

    def check(self, value):
        """The message for a string that is still wrong, or None."""
        if len(value) > self.max_length:
            return f"At most {self.max_length} characters."
        if "\x00" in value:
            return "Must not contain NUL characters."
        return None

    def schema(self):
        schema = {"type": "string", "maxLength": self.max_length, "pattern": "^[^\\u0000]*$"}
        if self.min_length:
            schema["minLength"] = self.min_length
        if self.description:
            schema["description"] = self.description
        if self.examples:
            schema["examples"] = list(self.examples)
        return schema if self.required else {"oneOf": [schema, {"type": "null"}]}


@dataclass(frozen=True)
class DateTime(Text):
    """An RFC 3339 date-time with its offset (`2030-01-01T10:00:00Z`); the form parses
    it (and refuses one that does not fit in UTC)."""

    max_length: int = 35
    kind = "an RFC 3339 date-time string such as 2030-01-01T10:00:00Z"

    def clean(self, value):
        return value.upper()  # RFC 3339 allows t and z; Django's parser wants T and Z

    def check(self, value):
        if len(value) > self.max_length or not RFC3339.fullmatch(value):
            return f"Must be {self.kind}."
        return None

    def schema(self):
        schema = {"type": "string", "format": "date-time"}
        if self.description:
            schema["description"] = self.description
        return schema if self.required else {"oneOf": [schema, {"type": "null"}]}


@dataclass(frozen=True)
class Integer(Text):
    """A JSON integer (not a boolean) from `minimum` to `maximum`, passed on as its
    decimal string (the form behind the endpoint parses it and says what fits)."""

    max_length: int = 0
    minimum: int = 0
    maximum: int = 10**6
    kind = "an integer"

    def accepts(self, value):
        return isinstance(value, int) and not isinstance(value, bool)

    def clean(self, value):
        return str(value)

    def check(self, value):
        if not self.minimum <= value <= self.maximum:
            return f"Must be from {self.minimum} to {self.maximum}."
        return None

    def schema(self):
        schema = {"type": "integer", "minimum": self.minimum, "maximum": self.maximum}
        if self.description:
            schema["description"] = self.description
        if self.examples:
            schema["examples"] = list(self.examples)
        return schema if self.required else {"oneOf": [schema, {"type": "null"}]}


@dataclass(frozen=True)
class Body:
    """The JSON object an endpoint reads: its fields by name; any other name is refused."""

    fields: dict

    def schema(self):
        return {
            "type": "object",
            "properties": {name: field.schema() for name, field in self.fields.items()},
            "required": [name for name, field in self.fields.items() if field.required],
            "additionalProperties": False,
        }


class BadBody(Exception):
    """A request body refused by `parse_body`; `.response()` is the JSON 400."""

    def __init__(self, fields):
        super().__init__(fields)
        self.fields = fields

    def response(self):
        return invalid(self.fields)


def _no_constants(name):
    raise ValueError(f"{name} is not a JSON number")


def _lone_surrogate(data):
    """The top-level name whose key or value holds a lone surrogate (json.loads accepts
    the escape \\ud800; no text column or UTF-8 encoder does), or None. Iterative: the
    value may be nested as deep as the parser allowed."""
    for name, value in data.items():
        stack = [name, value]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                if _SURROGATE.search(item):
                    return name
            elif isinstance(item, dict):
                stack.extend(item.keys())
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
    return None


def read_json_object(request):
    """The request's JSON object as it is ({} for an empty body), for an endpoint that
    takes a document of another tool's shape; raises BadBody as `parse_body` does."""
    raw = request.body
    if not raw.strip():
        return {}
    try:
        text = raw.decode("utf-8")
        data = json.loads(text, parse_constant=_no_constants)
    except UnicodeDecodeError as exc:
        raise BadBody({"non_field_errors": [f"The body is not UTF-8 text: {exc}."]}) from exc
    except RecursionError as exc:
        raise BadBody({"non_field_errors": ["The body is nested too deeply: send a JSON object."]}) from exc
    except ValueError as exc:  # JSONDecodeError, NaN and Infinity, integers of 4300+ digits
        raise BadBody({"non_field_errors": [f"The body is not valid JSON: {str(exc)[:200]}."]}) from exc
    if not isinstance(data, dict):
        raise BadBody({"non_field_errors": ["The body must be a JSON object."]})
    culprit = _lone_surrogate(data)
    if culprit is not None:
        message = "Text must be valid Unicode: a lone surrogate (such as \\ud800) is not."
        if _SURROGATE.search(culprit):
            raise BadBody({"non_field_errors": [f"A field name holds a lone surrogate. {message}"]})
        raise BadBody({culprit: [message]})
    return data


def parse_body(request, body):
    """The request's JSON object ({} for an empty body), each field checked against
    `body` (a Body): {name: str} for the fields sent, null ones left out. Raises BadBody
    naming each wrong field; every way a body can be wrong is a BadBody, never another
    exception (a body over DATA_UPLOAD_MAX_MEMORY_SIZE is handler400's)."""
    data = read_json_object(request)
    errors = {}
    for name in data:
        if name not in body.fields:
            errors[name[:100]] = ["Unknown field."]
    values = {}
    for name, field in body.fields.items():
        value = data.get(name)
        if value is None:
            continue
        if not field.accepts(value):
            errors[name] = [f"{name} must be {field.kind}, not {_json_type(value)}."]
        elif (message := field.check(value)) is not None:
            errors[name] = [message]
        else:
            values[name] = field.clean(value)
    if errors:
        raise BadBody(errors)
    return values


def _json_type(value):
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "an array"
    return "an object"


# --- error pages under /api/ -------------------------------------------------------------


def _is_api(request):
    return request.path.startswith(API_PREFIX)


def handler400(request, exception):
    if not _is_api(request):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        message = f"The body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes."
    else:
        message = "Bad request."
    return invalid({"non_field_errors": [message]})


def handler403(request, exception):
    if not _is_api(request):
        return defaults.permission_denied(request, exception)
    return api_error(403, str(exception) or "Your role does not allow this action.")


def handler404(request, exception):
    if not _is_api(request):
        return defaults.page_not_found(request, exception)
    message = exception.args[0] if exception.args and isinstance(exception.args[0], str) else ""
    return api_error(404, message or f"No such resource: {request.path}")


def handler500(request):
    """The last resort: an exception no view turned into an answer (a bug)."""
    if not _is_api(request):
        return defaults.server_error(request)
    request_id = getattr(request, "request_id", "")
    return api_error(500, f"Internal error; quote request id {request_id} when reporting it.",
                     request_id=request_id)
