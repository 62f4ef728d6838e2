import logging

from celery import shared_task
from django.conf import settings

from controlplane import anchors

logger = logging.getLogger(__name__)


@shared_task
def anchor_audit_chain():
    """Beat: append the audit chain's head to the local anchor file and, when a bucket is
    set, put it to S3 under Object Lock (controlplane/anchors.py). The local file is
    written first, so an S3 failure (raised: the task fails and the worker logs it)
    still leaves the anchor on disk."""
    anchor = anchors.take()
    path = anchors.append(anchors.default_path(), anchor)
    logger.info("audit anchor at seq %s appended to %s", anchor["seq"], path)
    if settings.AUDIT_ANCHOR_S3_BUCKET:
        key = anchors.put_s3(anchor)
        logger.info("audit anchor at seq %s put to s3://%s/%s", anchor["seq"],
                    settings.AUDIT_ANCHOR_S3_BUCKET, key)
