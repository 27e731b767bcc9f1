//! The route table: every route of the router with its path parameters and body family.

use super::*;

// ---------------------------------------------------------------------------------------------
// The route table
// ---------------------------------------------------------------------------------------------

/// Which kind of body and query an endpoint takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Family {
    Plain,
    Login,
    /// Ends sessions or devices: called with the sacrificial user's tokens.
    Logout,
    Refresh,
    Register,
    Username,
    RegistrationToken,
    Password,
    Deactivate,
    Device,
    DeleteDevices,
    Profile,
    Sync,
    Filter,
    Typing,
    Receipt,
    ReadMarkers,
    ToDevice,
    Presence,
    AccountData,
    Tag,
    CreateRoom,
    Membership,
    Join,
    Upgrade,
    Send,
    State,
    GetState,
    Messages,
    Context,
    Relations,
    Threads,
    Timestamp,
    Members,
    Redact,
    Report,
    UserDirectory,
    Search,
    Alias,
    Visibility,
    PublicRooms,
    SyncWs,
    AdminRegister,
    KeysUpload,
    KeysQuery,
    KeysClaim,
    SigningKeys,
    Signatures,
    BackupVersion,
    BackupKeys,
    PushRule,
    PushRuleEnabled,
    PushRuleActions,
    Pusher,
    MediaUpload,
    MediaPreview,
}

impl Family {
    /// Endpoints that end sessions, devices or accounts, or use up refresh tokens: each
    /// request gets a user of its own (a [`Victim`]).
    pub(super) fn sacrificial(self) -> bool {
        matches!(
            self,
            Family::Logout
                | Family::Password
                | Family::Deactivate
                | Family::DeleteDevices
                | Family::Refresh
        )
    }
}

#[derive(Clone, Debug)]
pub(super) struct Route {
    pub(super) method: Method,
    pub(super) template: &'static str,
    pub(super) family: Family,
}

/// Adds every path ruma knows for `R`, exactly as the router registers them.
pub(super) fn add<R: Metadata>(routes: &mut Vec<Route>, family: Family) {
    let paths: Vec<&'static str> = R::PATH_BUILDER.all_paths().collect();
    for path in paths {
        let mut push = |template: &'static str| {
            routes.push(Route {
                method: R::METHOD,
                template,
                family,
            })
        };
        push(path);
        if let Some(short) = path.strip_suffix("/{state_key}") {
            push(short);
            push(Box::leak(format!("{short}/").into_boxed_str()));
        }
    }
}

macro_rules! routes {
    ($routes:ident; $($family:ident => [$($ty:ty),+ $(,)?]),+ $(,)?) => {
        $( $( add::<$ty>(&mut $routes, Family::$family); )+ )+
    };
}

/// Every route of `hearth::api::router`, keep in step with it. (The legacy media routes are
/// deprecated in the spec but still served.)
#[allow(deprecated)]
pub(super) fn route_table() -> Vec<Route> {
    use ruma::api::client::{
        account, alias, authenticated_media as v1_media, backup, config, context, device,
        directory, discovery, filter, keys, knock, media as v3_media, membership, message,
        presence, push, read_marker, receipt, redact, relations, reporting, room, search, session,
        state, sync::sync_events, tag, threads, to_device, typing, user_directory,
    };
    let mut routes = Vec::new();
    routes!(routes;
        Plain => [
            discovery::get_supported_versions::Request,
            discovery::get_capabilities::v3::Request,
            session::get_login_types::v3::Request,
            account::whoami::v3::Request,
            device::get_devices::v3::Request,
            membership::joined_rooms::v3::Request,
            tag::get_tags::v3::Request,
            room::aliases::v3::Request,
            directory::get_room_visibility::v3::Request,
            membership::joined_members::v3::Request,
            state::get_state_events::v3::Request,
            room::get_room_event::v3::Request,
            profile_routes::get_profile,
            profile_routes::get_display_name,
            profile_routes::get_avatar_url,
            presence::get_presence::v3::Request,
            config::get_global_account_data::v3::Request,
            config::get_room_account_data::v3::Request,
            alias::get_alias::v3::Request,
            alias::delete_alias::v3::Request,
            filter::get_filter::v3::Request,
            device::get_device::v3::Request,
            push::get_pushrules_all::v3::Request,
            push::get_pushrules_global_scope::v3::Request,
            push::get_pushrule::v3::Request,
            push::get_pushrule_enabled::v3::Request,
            push::get_pushrule_actions::v3::Request,
            push::delete_pushrule::v3::Request,
            push::get_pushers::v3::Request,
            push::get_notifications::v3::Request,
            keys::get_key_changes::v3::Request,
            backup::get_latest_backup_info::v3::Request,
            backup::get_backup_info::v3::Request,
            backup::delete_backup_version::v3::Request,
            backup::get_backup_keys::v3::Request,
            backup::get_backup_keys_for_room::v3::Request,
            backup::get_backup_keys_for_session::v3::Request,
            backup::delete_backup_keys::v3::Request,
            backup::delete_backup_keys_for_room::v3::Request,
            backup::delete_backup_keys_for_session::v3::Request,
            v1_media::get_media_config::v1::Request,
            v3_media::get_media_config::v3::Request,
            v3_media::create_mxc_uri::v1::Request,
            v1_media::get_content::v1::Request,
            v1_media::get_content_as_filename::v1::Request,
            v1_media::get_content_thumbnail::v1::Request,
            v3_media::get_content::v3::Request,
            v3_media::get_content_as_filename::v3::Request,
            v3_media::get_content_thumbnail::v3::Request,
        ],
        KeysUpload => [keys::upload_keys::v3::Request],
        KeysQuery => [keys::get_keys::v3::Request],
        KeysClaim => [keys::claim_keys::v3::Request],
        SigningKeys => [keys::upload_signing_keys::v3::Request],
        Signatures => [keys::upload_signatures::v3::Request],
        BackupVersion => [
            backup::create_backup_version::v3::Request,
            backup::update_backup_version::v3::Request,
        ],
        BackupKeys => [
            backup::add_backup_keys::v3::Request,
            backup::add_backup_keys_for_room::v3::Request,
            backup::add_backup_keys_for_session::v3::Request,
        ],
        PushRule => [push::set_pushrule::v3::Request],
        PushRuleEnabled => [push::set_pushrule_enabled::v3::Request],
        PushRuleActions => [push::set_pushrule_actions::v3::Request],
        Pusher => [push::set_pusher::v3::Request],
        MediaUpload => [
            v3_media::create_content::v3::Request,
            v3_media::create_content_async::v3::Request,
        ],
        MediaPreview => [
            v1_media::get_media_preview::v1::Request,
            v3_media::get_media_preview::v3::Request,
        ],
        Login => [session::login::v3::Request],
        Logout => [session::logout::v3::Request, session::logout_all::v3::Request],
        Refresh => [session::refresh_token::v3::Request],
        Register => [account::register::v3::Request],
        Username => [account::get_username_availability::v3::Request],
        RegistrationToken => [account::check_registration_token_validity::v1::Request],
        Password => [account::change_password::v3::Request],
        Deactivate => [account::deactivate::v3::Request],
        Device => [device::update_device::v3::Request],
        DeleteDevices => [device::delete_device::v3::Request, device::delete_devices::v3::Request],
        Profile => [profile_routes::set_display_name, profile_routes::set_avatar_url],
        Sync => [sync_events::v3::Request],
        Filter => [filter::create_filter::v3::Request],
        Typing => [typing::create_typing_event::v3::Request],
        Receipt => [receipt::create_receipt::v3::Request],
        ReadMarkers => [read_marker::set_read_marker::v3::Request],
        ToDevice => [to_device::send_event_to_device::v3::Request],
        Presence => [presence::set_presence::v3::Request],
        AccountData => [
            config::set_global_account_data::v3::Request,
            config::set_room_account_data::v3::Request,
        ],
        Tag => [tag::create_tag::v3::Request, tag::delete_tag::v3::Request],
        CreateRoom => [room::create_room::v3::Request],
        Membership => [
            membership::invite_user::v3::Request,
            membership::kick_user::v3::Request,
            membership::ban_user::v3::Request,
            membership::unban_user::v3::Request,
        ],
        Join => [
            membership::join_room_by_id_or_alias::v3::Request,
            membership::join_room_by_id::v3::Request,
            membership::leave_room::v3::Request,
            membership::forget_room::v3::Request,
            knock::knock_room::v3::Request,
        ],
        Upgrade => [room::upgrade_room::v3::Request],
        Send => [message::send_message_event::v3::Request],
        State => [state::send_state_event::v3::Request],
        GetState => [state::get_state_event_for_key::v3::Request],
        Messages => [message::get_message_events::v3::Request],
        Context => [context::get_context::v3::Request],
        Relations => [
            relations::get_relating_events::v1::Request,
            relations::get_relating_events_with_rel_type::v1::Request,
            relations::get_relating_events_with_rel_type_and_event_type::v1::Request,
        ],
        Threads => [threads::get_threads::v1::Request],
        Timestamp => [room::get_event_by_timestamp::v1::Request],
        Members => [membership::get_member_events::v3::Request],
        Redact => [redact::redact_event::v3::Request],
        Report => [
            room::report_content::v3::Request,
            room::report_room::v3::Request,
            reporting::report_user::v3::Request,
        ],
        UserDirectory => [user_directory::search_users::v3::Request],
        Search => [search::search_events::v3::Request],
        Alias => [alias::create_alias::v3::Request],
        Visibility => [directory::set_room_visibility::v3::Request],
        PublicRooms => [
            directory::get_public_rooms::v3::Request,
            directory::get_public_rooms_filtered::v3::Request,
        ],
    );
    // The routes the router adds by hand.
    let manual = [
        (Method::GET, "/.well-known/matrix/client", Family::Plain),
        (Method::GET, "/.well-known/matrix/server", Family::Plain),
        (Method::GET, "/.well-known/matrix/support", Family::Plain),
        (Method::GET, "/_hearth/client/v1/sync/ws", Family::SyncWs),
        (Method::GET, "/_synapse/admin/v1/register", Family::Plain),
        (
            Method::POST,
            "/_synapse/admin/v1/register",
            Family::AdminRegister,
        ),
    ];
    for (method, template, family) in manual {
        routes.push(Route {
            method,
            template,
            family,
        });
    }
    routes
}

/// The profile request types, renamed so the `routes!` list reads evenly.
pub(super) mod profile_routes {
    pub use ruma::api::client::profile::{
        get_avatar_url::v3::Request as get_avatar_url,
        get_display_name::v3::Request as get_display_name, get_profile::v3::Request as get_profile,
        set_avatar_url::v3::Request as set_avatar_url,
        set_display_name::v3::Request as set_display_name,
    };
}
