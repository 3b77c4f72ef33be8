"""The moderators' admin. Users stay in Django's own user admin.

What changes what clients see goes through the services, as on every other
path: the soft-delete action, and adding a mute, room ban or site ban, so the
change is broadcast live and has the same effects as over the API. Messages
are never added or hard-deleted here: a hard delete leaves a hole in the
room's `seq`, which clients read as a lost message. Rooms are soft-deleted
(services.room_delete), and shown with a filter; users are deleted in the
user admin, and their messages stay with a placeholder author.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from chat import services
from chat.errors import ChatError
from chat.models import Membership, Message, ReadReceipt, Room, RoomBan, RoomMute, SiteBan
from chat.schemas import DELETED_USER_NAME


class CascadeDeleteOnlyMixin:
    """Rows nobody deletes by hand, but that go with their user when the user
    is deleted (read receipts, last-seen times).

    The admin's delete confirmation refuses to delete a user while any row
    that goes with them has `has_delete_permission` False, so a plain
    read-only admin would make users undeletable. Here the permission stays
    (for that check), and only the row's own delete paths are closed.
    """

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions: dict[str, Any] = super().get_actions(request)  # type: ignore[misc]
        actions.pop("delete_selected", None)
        return actions

    def delete_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> HttpResponse:
        raise PermissionDenied

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        response: HttpResponse = super().change_view(  # type: ignore[misc]
            request, object_id, form_url, extra_context={**(extra_context or {}), "show_delete": False}
        )
        return response


# --- rooms --------------------------------------------------------------------


class MembershipInline(admin.TabularInline):
    """Roles are edited here and members removed; members are added through
    MembershipAdmin. A user picker per row would cost a query per member, and
    rooms like `general` have thousands."""

    model = Membership
    extra = 0
    fields = ("user", "role", "joined_at")
    readonly_fields = ("user", "joined_at")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Membership]:
        return super().get_queryset(request).select_related("user")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "room", "role", "joined_at"]
    list_select_related = ["user", "room"]
    list_filter = ["role"]
    search_fields = ["user__username", "room__id"]
    raw_id_fields = ["user", "room"]

    # Removing a member goes through the service, which also takes the user's
    # live sockets out of the room on every process.
    def delete_model(self, request: HttpRequest, obj: Membership) -> None:
        services.membership_remove(room=obj.room, user=obj.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Membership]) -> None:
        for membership in queryset.select_related("room", "user"):
            services.membership_remove(room=membership.room, user=membership.user)


class RoomMuteInline(admin.TabularInline):
    """Shown, and removable (unmute); new mutes go through RoomMuteAdmin."""

    model = RoomMute
    fk_name = "room"
    extra = 0
    fields = readonly_fields = ("user", "until", "reason", "created_by", "created_at")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).select_related("user", "created_by")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class RoomBanInline(admin.TabularInline):
    """Shown, and removable (unban); new bans go through RoomBanAdmin."""

    model = RoomBan
    fk_name = "room"
    extra = 0
    fields = readonly_fields = ("user", "reason", "created_by", "created_at")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).select_related("user", "created_by")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class RoomAdminForm(forms.ModelForm):
    class Meta:
        model = Room
        fields = ["id", "name", "topic", "visibility", "created_by", "slow_mode_seconds"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # 1:1 rooms are made by the API, one per pair, never by hand.
        if "visibility" in self.fields:
            field = self.fields["visibility"]
            field.choices = [c for c in field.choices if c[0] != Room.Visibility.DIRECT]  # type: ignore[attr-defined]

    def clean_id(self) -> str:
        room_id: str = self.cleaned_data["id"]
        if services.room_id_is_reserved(room_id):
            raise forms.ValidationError("This id is reserved for the 1:1 rooms and the API's routes.")
        # The form's own unique check asks Room.objects, which hides deleted
        # rooms; a save under a deleted room's id would overwrite that row
        # (revived, its seq counter back at 0).
        if self.instance._state.adding and Room.all_objects.filter(pk=room_id).exists():
            raise forms.ValidationError("A deleted room has this id; restore it or choose another id.")
        return room_id


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    form = RoomAdminForm
    list_display = ["id", "name", "visibility", "member_count", "last_seq", "created_by", "created_at", "deleted_at"]
    list_filter = [("deleted_at", admin.EmptyFieldListFilter), "visibility"]
    search_fields = ["id", "name", "topic"]
    list_select_related = ["created_by"]
    raw_id_fields = ["created_by"]
    readonly_fields = ["last_seq", "direct_key", "created_at", "deleted_at"]
    inlines = [MembershipInline, RoomMuteInline, RoomBanInline]
    actions = ["restore"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Room]:
        # Deleted rooms too (Room.objects hides them), so they can be found
        # with the filter and restored.
        rooms = Room.all_objects.annotate(member_count=Count("memberships", distinct=True))
        ordering = self.get_ordering(request)
        return rooms.order_by(*ordering) if ordering else rooms

    # Deleting a room, from its page or the "delete selected" action, is the
    # soft delete of the service: its sockets are moved out on every process,
    # members are told, and its messages stay.
    def delete_model(self, request: HttpRequest, obj: Room) -> None:
        services.room_delete(room=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Room]) -> None:
        for room in queryset:
            services.room_delete(room=room)

    def get_deleted_objects(
        self, objs: Any, request: HttpRequest
    ) -> tuple[list[Any], dict[str, int], set[str], list[Any]]:
        # What the confirmation page lists: only the rooms, since nothing that
        # hangs off them is deleted (the default lists, and checks delete
        # permissions on, every message and receipt of the room).
        rooms = list(objs)
        return [str(room) for room in rooms], {str(Room._meta.verbose_name_plural): len(rooms)}, set(), []

    @admin.action(description="Restore the selected deleted rooms (not 1:1 rooms)", permissions=["delete"])
    def restore(self, request: HttpRequest, queryset: QuerySet[Room]) -> None:
        restored, refused = 0, 0
        for room in queryset:
            try:
                restored += services.room_restore(room=room)
            except ChatError:
                refused += 1
        self.message_user(request, f"{restored} room(s) restored.", messages.SUCCESS)
        if refused:
            self.message_user(request, f"{refused} deleted 1:1 room(s) cannot be restored.", messages.WARNING)

    @admin.display(description="members", ordering="member_count")
    def member_count(self, room: Room) -> int:
        return int(getattr(room, "member_count", 0))

    def save_model(self, request: HttpRequest, obj: Room, form: Any, change: bool) -> None:
        if not change:
            super().save_model(request, obj, form, change)
            return
        changed = set(form.changed_data)
        # Name, topic and slow mode through the service, so open pages hear
        # `room:updated`; the rest (the creator) as a plain save of those
        # fields only, which never writes back a stale last_seq.
        services.room_update(
            room=obj,
            name=obj.name if "name" in changed else None,
            topic=obj.topic if "topic" in changed else None,
            slow_mode_seconds=obj.slow_mode_seconds if "slow_mode_seconds" in changed else None,
        )
        rest = changed - {"name", "topic", "slow_mode_seconds"}
        if rest:
            obj.save(update_fields=sorted(rest))

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if formset.model is not Membership:
            super().save_formset(request, form, formset, change)
            return
        members = formset.save(commit=False)
        for membership in formset.deleted_objects:
            services.membership_remove(room=membership.room, user=membership.user)
        for membership in members:
            membership.save()

    def get_readonly_fields(self, request: HttpRequest, obj: Room | None = None) -> list[str]:
        # The id is in every client's URLs and every message row: fixed once
        # made. Visibility too: a private room made public would open its
        # history, and sockets of a public room made private would keep
        # hearing it; create a new room instead.
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "id", "visibility"] if obj is not None else fields


# --- messages -----------------------------------------------------------------


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["id", "room", "seq", "author_name", "excerpt", "created_at", "edited_at", "deleted_at"]
    list_filter = [
        "room",
        ("author", admin.RelatedOnlyFieldListFilter),
        "created_at",
        ("deleted_at", admin.EmptyFieldListFilter),
    ]
    list_select_related = ["room", "author"]
    search_fields = ["text"]
    date_hierarchy = "created_at"
    ordering = ["-id"]
    actions = ["soft_delete"]
    fields = readonly_fields = (
        "room",
        "seq",
        "author",
        "text",
        "reply_to",
        "client_id",
        "created_at",
        "edited_at",
        "deleted_at",
    )
    show_full_result_count = False  # COUNT(*) over every message on each page view

    @admin.display(description="author", ordering="author__username")
    def author_name(self, message: Message) -> str:
        return DELETED_USER_NAME if message.author_id is None else str(message.author)

    @admin.display(description="text")
    def excerpt(self, message: Message) -> str:
        if message.deleted_at is not None:
            return "(deleted)"
        return message.text if len(message.text) <= 80 else f"{message.text[:79]}…"

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Only the soft delete (the action below); the delete page answers 403.
        return False

    @admin.action(description="Soft delete the selected messages (clients are told at once)", permissions=["change"])
    def soft_delete(self, request: HttpRequest, queryset: QuerySet[Message]) -> None:
        count = services.messages_soft_delete(messages=list(queryset))
        self.message_user(request, f"{count} message(s) deleted.", messages.SUCCESS)


@admin.register(ReadReceipt)
class ReadReceiptAdmin(CascadeDeleteOnlyMixin, admin.ModelAdmin):
    """Read-only: watermarks move only forward, and only by reading. They go
    with their user when the user is deleted."""

    list_display = ["user", "room", "last_read_message", "updated_at"]
    list_select_related = ["user", "room", "last_read_message"]
    list_filter = ["room"]
    search_fields = ["user__username", "room__id"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --- moderation ---------------------------------------------------------------


class _Refused(Exception):
    """A service refused an admin's add; its message was shown to the user."""


def _moderator(request: HttpRequest) -> User:
    user = request.user
    if not isinstance(user, User):  # the admin only lets staff in
        raise PermissionDenied
    return user


class _ThroughServiceAdmin(admin.ModelAdmin):
    """New records are made by the service (its checks, effects and broadcasts);
    existing ones may only have their reason edited."""

    raw_id_fields = ["user", "room"]
    target_fields: list[str] = ["user", "room"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fixed = ["created_by", "created_at"]
        return [*self.target_fields, *fixed] if obj is not None else fixed

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        try:
            made = self.create(request, obj)
        except ChatError as error:
            # The admin's own form checks ran already; this is a rule the service
            # enforces (e.g. moderators cannot be banned). Nothing was written.
            self.message_user(request, error.message, messages.ERROR)
            raise _Refused from None
        obj.pk = made.pk
        obj._state.adding = False

    def create(self, request: HttpRequest, obj: Any) -> Any:
        raise NotImplementedError

    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # _Refused leaves the admin's transaction, so nothing it began is kept.
        try:
            return super().changeform_view(request, *args, **kwargs)
        except _Refused:
            return HttpResponseRedirect(request.path)


@admin.register(RoomMute)
class RoomMuteAdmin(_ThroughServiceAdmin):
    list_display = ["user", "room", "until", "reason", "created_by", "created_at"]
    list_select_related = ["user", "room", "created_by"]
    list_filter = ["room"]
    search_fields = ["user__username", "room__id"]
    target_fields = ["user", "room", "until"]

    def create(self, request: HttpRequest, obj: RoomMute) -> RoomMute:
        return services.mute_create(
            moderator=_moderator(request),
            room=obj.room,
            user=obj.user,
            until=obj.until,
            reason=obj.reason,
        )


@admin.register(RoomBan)
class RoomBanAdmin(_ThroughServiceAdmin):
    list_display = ["user", "room", "reason", "created_by", "created_at"]
    list_select_related = ["user", "room", "created_by"]
    list_filter = ["room"]
    search_fields = ["user__username", "room__id"]

    def create(self, request: HttpRequest, obj: RoomBan) -> RoomBan:
        return services.ban_create(
            moderator=_moderator(request),
            room=obj.room,
            user=obj.user,
            reason=obj.reason,
        )


@admin.register(SiteBan)
class SiteBanAdmin(_ThroughServiceAdmin):
    list_display = ["user", "reason", "created_by", "created_at"]
    list_select_related = ["user", "created_by"]
    search_fields = ["user__username"]
    raw_id_fields = ["user"]
    target_fields = ["user"]

    def create(self, request: HttpRequest, obj: SiteBan) -> SiteBan:
        return services.site_ban_create(
            moderator=_moderator(request),
            user=obj.user,
            reason=obj.reason,
        )
