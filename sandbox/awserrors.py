"""AWS's error responses, in each service's own protocol, for the sandbox's AWS endpoint.

A client parses errors by protocol: JSON services read `__type` and `message`,
REST-JSON services the `x-amzn-ErrorType` header, query and REST-XML services an XML
`ErrorResponse`, EC2 its `Response/Errors`. An answer in any other shape (moto's HTML
500 for an operation it lacks) is a server error to botocore, which it retries: the AWS
CLI then tries nine more times before it gives up. So every error the sandbox makes
goes through `render`, in the protocol botocore's model of the service names.
"""

import io
import json
import time
from xml.sax.saxutils import escape

import moto
from botocore.exceptions import DataNotFoundError
from moto.core.request import Request
from moto.core.routing import ServiceOperationRouter
from moto.core.utils import get_service_model
from werkzeug.exceptions import HTTPException

REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error"}


class AwsError(Exception):
    def __init__(self, code, message, status=400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


# moto serves some services from another's app: ELBv2 from ELB's, by the API version.
SHARED_APPS = {("elb", "2015-12-01"): "elbv2"}


def service_model(name, environ=None, body=b""):
    """botocore's model of a service (moto's cached copy, which its router needs), by
    its name in botocore or moto, or None if there is none."""
    if environ is not None:
        request = Request({**environ, "wsgi.input": io.BytesIO(body)})
        name = SHARED_APPS.get((name, request.values.get("Version")), name)
    try:
        return get_service_model(name)
    except DataNotFoundError:
        return None


def protocol_of(model, environ):
    """The wire protocol of this request: a service that speaks several (CloudWatch:
    CBOR, JSON or query) is answered in the one the client used."""
    content_type = environ.get("CONTENT_TYPE", "")
    if environ.get("HTTP_X_AMZ_TARGET") or content_type.startswith("application/x-amz-json"):
        return "json"
    if content_type.startswith("application/x-www-form-urlencoded"):
        return "ec2" if model is not None and model.protocol == "ec2" else "query"
    return model.protocol if model is not None else "rest-json"


def operation_of(model, environ, body):
    """The AWS operation a request calls (`ListGlobalTables`), or None if it names none."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        return target.rsplit(".", 1)[-1]
    request = Request({**environ, "wsgi.input": io.BytesIO(body)})
    action = request.args.get("Action") or request.form.get("Action")
    if action or model is None:
        return action
    try:
        operation, _params = ServiceOperationRouter(model).match(request)
    except (HTTPException, NotImplementedError):
        return None
    return operation.name


def unsupported(model, environ, body):
    """The AwsError for an operation moto does not implement (or no service has): 400, the
    code AWS gives an unknown action in that protocol, which no client retries."""
    protocol = protocol_of(model, environ)
    code = "InvalidAction" if protocol in ("query", "ec2") else "UnknownOperationException"
    name = model.service_id if model is not None else "this service"
    operation = operation_of(model, environ, body)
    if operation is None:
        what = f"{environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')} is not an operation of {name}"
    elif model is not None and operation not in model.operation_names:
        what = f"{operation} is not an operation of {name}"
    else:
        what = f"{name} {operation} is not supported by the sandbox (moto {moto.__version__} lacks it)"
    return AwsError(code, f"{what}; see docs/SANDBOX.md for what the sandbox serves")


def render(model, environ, error):
    """(status line, headers, body) of `error` as the service's protocol shapes it."""
    protocol = protocol_of(model, environ)
    request_id = f"sandbox-{time.time_ns()}"
    headers = [("x-amzn-RequestId", request_id)]
    if protocol == "json":
        version = model.metadata.get("jsonVersion", "1.0") if model is not None else "1.0"
        content_type = f"application/x-amz-json-{version}"
        body = json.dumps({"__type": error.code, "message": error.message})
    elif protocol == "rest-json":
        content_type = "application/json"
        headers.append(("x-amzn-ErrorType", error.code))
        body = json.dumps({"message": error.message})
    elif protocol == "ec2":
        content_type = "text/xml"
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
            f"<Code>{escape(error.code)}</Code><Message>{escape(error.message)}</Message>"
            f"</Error></Errors><RequestID>{request_id}</RequestID></Response>"
        )
    else:  # query and rest-xml
        content_type = "text/xml"
        kind = "Sender" if error.status < 500 else "Receiver"
        xmlns = model.metadata.get("xmlNamespace", "") if model is not None else ""
        if isinstance(xmlns, dict):  # query services name it as {"uri": ...}
            xmlns = xmlns.get("uri", "")
        namespace = f' xmlns="{escape(xmlns)}"' if xmlns else ""
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<ErrorResponse{namespace}><Error>'
            f"<Type>{kind}</Type><Code>{escape(error.code)}</Code>"
            f"<Message>{escape(error.message)}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        )
    data = body.encode()
    headers += [("Content-Type", content_type), ("Content-Length", str(len(data)))]
    return f"{error.status} {REASONS.get(error.status, 'Error')}", headers, data
