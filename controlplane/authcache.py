"""Who is signed in and what they may do, read from the shared cache instead of the
database on every request.

Every signed-in request reads its user and, for a role user, the user's and its groups'
permissions: three ORM queries before the view does anything, most of what a poll that
finds nothing changed costs (docs/PERFORMANCE.md). Roles change rarely, so the backend
keeps both in the cache (CACHES: Redis in production, a folder under the var directory
in the embedded default: both shared by every process), under a key that carries a
*generation*. Any change that could alter a user or a permission (a user saved, a group
or permission changed, a membership added or removed) moves the generation on, in this
process at once and again when its transaction commits, so no process reads an entry
made before it: a role taken away holds from the next request on, in every worker.
Sessions are Django's `cached_db` engine on the same cache (settings.py).
"""

import uuid

from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group, Permission, User
from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_migrate, post_save

GENERATION_KEY = "auth:generation"
# Entries outlive no change (the generation sees to that); the timeout only bounds how
# long an unused one stays in the cache.
TIMEOUT_SECONDS = 3600


def _current(values):
    """The generation in `values` (from get_many), made if the cache has none. A
    generation is a random token, never a counter: one evicted from the cache and made
    again cannot bring back the entries of an earlier one."""
    generation = values.get(GENERATION_KEY)
    if generation is None:
        cache.add(GENERATION_KEY, uuid.uuid4().hex, timeout=None)
        generation = cache.get(GENERATION_KEY)
    return generation


def move_generation_on(update_fields=None, **_):
    """Make every cached user and permission set stale, now and when the current
    transaction commits (what it changed is visible to others only then). A sign-in's
    save of `last_login` changes nothing that is cached for: not every sign-in should
    make every entry stale."""
    if update_fields is not None and set(update_fields) <= {"last_login"}:
        return

    def move():
        cache.set(GENERATION_KEY, uuid.uuid4().hex, timeout=None)

    move()
    transaction.on_commit(move)


def _valid(entry, generation):
    """The value of a (generation, value) entry if it was made in this generation."""
    if entry is not None and entry[0] == generation:
        return entry[1]
    return None


class CachedModelBackend(ModelBackend):
    """Django's ModelBackend with the user and its permissions read through the cache:
    one round trip for the generation, the user and its permissions. An entry counts
    only in the generation it was made in; it is made from what the database said after
    that generation was read, so a change moves it on before or after the read, and
    either way the entry is never used again."""

    def get_user(self, user_id):
        user_key, perms_key = f"auth:user:{user_id}", f"auth:perms:{user_id}"
        values = cache.get_many([GENERATION_KEY, user_key, perms_key])
        generation = _current(values)
        user = _valid(values.get(user_key), generation)
        if user is None:
            user = super().get_user(user_id)
            if user is None:
                return None
            cache.set(user_key, (generation, user), TIMEOUT_SECONDS)
        perms = _valid(values.get(perms_key), generation)
        if perms is not None:
            user._perm_cache = perms
        return user if self.user_can_authenticate(user) else None

    def get_all_permissions(self, user_obj, obj=None):
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None:
            return set()
        if not hasattr(user_obj, "_perm_cache"):
            generation = _current(cache.get_many([GENERATION_KEY]))
            perms = super().get_all_permissions(user_obj)
            cache.set(f"auth:perms:{user_obj.pk}", (generation, perms), TIMEOUT_SECONDS)
        return user_obj._perm_cache


def connect():
    """Move the generation on whenever a user, a group, a permission or a link between
    them changes, and after migrations, whose historical models send no signals that
    name these (migrations keep the roles in step: controlplane/roles.py). Called by
    AppConfig.ready."""
    for model in (User, Group, Permission):
        post_save.connect(move_generation_on, sender=model, dispatch_uid=f"authcache-save-{model.__name__}")
        post_delete.connect(move_generation_on, sender=model, dispatch_uid=f"authcache-del-{model.__name__}")
    for through in (User.groups.through, User.user_permissions.through, Group.permissions.through):
        uid = f"authcache-m2m-{through.__name__}"
        m2m_changed.connect(move_generation_on, sender=through, dispatch_uid=uid)
    post_migrate.connect(move_generation_on, dispatch_uid="authcache-migrate")
