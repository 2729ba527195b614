//! The simulated world: groups per business phone number, and Meta's rules over them.
//!
//! Every operation is synchronous and answers with its result plus the webhook events Meta
//! would send for it; the HTTP layers decide how to render the one and when to send the other.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::ids;
use super::meta::MetaFailure;
use crate::error::ApiError;

/// Messages kept per group for inspection; the oldest go first.
const MESSAGE_LOG_CAPACITY: usize = 100;
/// Participants of one group, the business not counted (Meta's limit).
pub const MAX_PARTICIPANTS: usize = 8;
/// Groups one business phone number may have (Meta's limit, error 131211).
pub const MAX_GROUPS_PER_NUMBER: usize = 10_000;
const MAX_SUBJECT_CHARS: usize = 128;
const MAX_DESCRIPTION_CHARS: usize = 2048;
pub const MAX_PICTURE_BYTES: usize = 5 * 1024 * 1024;
const MIN_PICTURE_SIDE: usize = 192;
/// Participants one removal may name.
const MAX_PER_REMOVAL: usize = 8;
const DEFAULT_PAGE: usize = 25;
const MAX_PAGE: usize = 1024;

/// The fields `GET /{group_id}` serves (README, "API overview", and Meta's reference).
const GROUP_FIELDS: [&str; 8] = [
    "id",
    "subject",
    "description",
    "participants",
    "join_approval_mode",
    "suspended",
    "creation_timestamp",
    "total_participant_count",
];

/// The webhook field (subscription) an event belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Lifecycle,
    Participants,
    Settings,
    Status,
    /// Meta's `messages` field: what participants write, and statuses of what was sent.
    Messages,
}

impl Field {
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Lifecycle => "group_lifecycle_update",
            Field::Participants => "group_participants_update",
            Field::Settings => "group_settings_update",
            Field::Status => "group_status_update",
            Field::Messages => "messages",
        }
    }
}

/// One item of a webhook's `value` (`groups[]`, `messages[]` or `statuses[]`), with the
/// number it concerns.
#[derive(Debug, Clone)]
pub struct Event {
    pub pn: String,
    pub field: Field,
    pub item: Value,
    /// Meta's `contacts`, sent beside the items: the participant who wrote a message.
    pub contacts: Vec<Value>,
}

impl Event {
    /// The list of `value` the item goes in.
    pub fn list(&self) -> &'static str {
        match self.field {
            Field::Messages if self.item.get("status").is_some() => "statuses",
            Field::Messages => "messages",
            _ => "groups",
        }
    }

    /// What kind of item this is: its `type`, or a status's `status`.
    pub fn kind(&self) -> &str {
        self.item["type"]
            .as_str()
            .or_else(|| self.item["status"].as_str())
            .unwrap_or_default()
    }

    /// The group the item is about: its `group_id`, or a status's recipient.
    pub fn group_id(&self) -> Option<&str> {
        self.item["group_id"]
            .as_str()
            .or_else(|| self.item["recipient_id"].as_str())
    }

    /// A status of message `message_id` sent to group `group_id`; `participant` for the
    /// statuses Meta reports per participant (delivered, read), named by phone and by
    /// business-scoped user id, with the `contacts` entry Meta adds for them; `pricing` as
    /// Meta prices the message.
    fn status(
        pn: &str,
        group_id: &str,
        message_id: &str,
        status: &str,
        participant: Option<&str>,
        pricing: &Value,
        now: i64,
    ) -> Self {
        let mut item = json!({
            "id": message_id,
            "recipient_id": group_id,
            "recipient_type": "group",
            "status": status,
            "timestamp": now.to_string(),
            "pricing": pricing,
        });
        let mut contacts = Vec::new();
        if let Some(p) = participant {
            let user_id = ids::user_id(p);
            item["recipient_participant_id"] = json!(p);
            item["recipient_participant_user_id"] = json!(user_id);
            contacts.push(json!({ "wa_id": p, "user_id": user_id }));
        }
        Event {
            pn: pn.to_owned(),
            field: Field::Messages,
            item,
            contacts,
        }
    }

    /// A change of kind `kind` (the item's `type`) to group `group_id` at `now`: every item
    /// carries those three; `details`, a JSON object, adds what that kind of change carries.
    fn about_group(
        pn: &str,
        field: Field,
        group_id: &str,
        kind: &str,
        now: i64,
        details: Value,
    ) -> Self {
        let mut item = details;
        item["timestamp"] = json!(now.to_string());
        item["group_id"] = json!(group_id);
        item["type"] = json!(kind);
        Event {
            pn: pn.to_owned(),
            field,
            item,
            contacts: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalMode {
    AutoApprove,
    ApprovalRequired,
}

impl ApprovalMode {
    pub fn parse(raw: &str) -> Result<Self, MetaFailure> {
        match raw {
            "auto_approve" => Ok(Self::AutoApprove),
            "approval_required" => Ok(Self::ApprovalRequired),
            other => Err(MetaFailure::invalid_parameter(format!(
                "join_approval_mode must be auto_approve or approval_required, not {other:?}"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AutoApprove => "auto_approve",
            Self::ApprovalRequired => "approval_required",
        }
    }
}

#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub id: String,
    pub wa_id: String,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct Picture {
    pub sha256: String,
    pub width: usize,
    pub height: usize,
    pub bytes: usize,
}

#[derive(Debug, Clone)]
pub struct Invitation {
    pub to: String,
    pub template: String,
    pub message_id: String,
    pub sent_at: i64,
}

/// A message written in a group, by the business (`from: None`) or a participant.
#[derive(Debug, Clone)]
pub struct Message {
    pub id: String,
    pub from: Option<String>,
    pub kind: String,
    pub content: Value,
    pub at: i64,
}

#[derive(Debug, Clone)]
pub struct Group {
    pub id: String,
    pub pn: String,
    /// Creation order, for listings.
    seq: u64,
    /// The JID number inside the id; join request ids are derived from it.
    number: String,
    pub subject: String,
    pub description: Option<String>,
    pub mode: ApprovalMode,
    pub created_at: i64,
    /// WhatsApp ids, in joining order.
    pub participants: Vec<String>,
    pub join_requests: Vec<JoinRequest>,
    pub invite_code: String,
    /// Codes of links reset since, kept to tell "reset" from "never was".
    pub revoked_codes: Vec<String>,
    /// Removed by the business: they cannot come back through the link (Meta's rule).
    pub removed: BTreeSet<String>,
    pub suspended: bool,
    pub picture: Option<Picture>,
    pub invitations: Vec<Invitation>,
    /// The latest messages, oldest first.
    pub messages: Vec<Message>,
}

impl Group {
    /// An event about this group (see [`Event::about_group`]).
    fn event(&self, field: Field, kind: &str, now: i64, details: Value) -> Event {
        Event::about_group(&self.pn, field, &self.id, kind, now, details)
    }

    fn is_full(&self) -> bool {
        self.participants.len() >= MAX_PARTICIPANTS
    }

    fn has_participant(&self, wa_id: &str) -> bool {
        self.participants.iter().any(|p| p == wa_id)
    }

    fn usable(&self) -> Result<(), MetaFailure> {
        if self.suspended {
            Err(MetaFailure::suspended(&self.id))
        } else {
            Ok(())
        }
    }

    fn invite_link(&self) -> String {
        ids::invite_link(&self.invite_code)
    }

    fn record_message(&mut self, message: Message) {
        self.messages.push(message);
        if self.messages.len() > MESSAGE_LOG_CAPACITY {
            self.messages.remove(0);
        }
    }

    fn participants_json(&self) -> Value {
        Value::Array(self.participants.iter().map(|p| person(p)).collect())
    }

    fn join_request_json(jr: &JoinRequest) -> Value {
        json!({
            "join_request_id": jr.id,
            "wa_id": jr.wa_id,
            "user_id": ids::user_id(&jr.wa_id),
            "creation_timestamp": jr.created_at,
        })
    }

    /// The participant `input` names (a phone number, a WhatsApp id or a business-scoped
    /// user id): their WhatsApp id.
    fn participant_named(&self, input: &str) -> Option<String> {
        if is_user_id(input) {
            self.participants
                .iter()
                .find(|p| ids::user_id(p) == input)
                .cloned()
        } else {
            let wa_id = digits(input);
            self.has_participant(wa_id).then(|| wa_id.to_owned())
        }
    }

    /// Everything the simulation knows, for `GET /sandbox/groups/{id}`.
    pub fn inspect(&self) -> Value {
        json!({
            "id": self.id,
            "phone_number_id": self.pn,
            "subject": self.subject,
            "description": self.description,
            "join_approval_mode": self.mode.as_str(),
            "suspended": self.suspended,
            "creation_timestamp": self.created_at,
            "invite_link": self.invite_link(),
            "participants": self.participants_json(),
            "total_participant_count": self.participants.len(),
            "join_requests": self.join_requests.iter().map(Self::join_request_json).collect::<Vec<_>>(),
            "removed_participants": self.removed.iter().collect::<Vec<_>>(),
            "profile_picture": self.picture.as_ref().map(|p| json!({
                "sha256": p.sha256, "width": p.width, "height": p.height, "bytes": p.bytes,
            })),
            "invitations": self.invitations.iter().map(|i| json!({
                "to": i.to, "template": i.template, "message_id": i.message_id, "sent_at": i.sent_at,
            })).collect::<Vec<_>>(),
            "messages": self.messages.iter().map(|m| json!({
                "message_id": m.id,
                "from": m.from.as_deref().unwrap_or("business"),
                "type": m.kind,
                "content": m.content,
                "timestamp": m.at,
            })).collect::<Vec<_>>(),
        })
    }

    fn summary(&self) -> Value {
        json!({
            "id": self.id,
            "phone_number_id": self.pn,
            "subject": self.subject,
            "join_approval_mode": self.mode.as_str(),
            "suspended": self.suspended,
            "total_participant_count": self.participants.len(),
            "pending_join_requests": self.join_requests.len(),
        })
    }
}

/// `limit`/`after`/`before` of a Graph listing.
#[derive(Debug, Clone, Copy)]
pub struct PageQuery {
    limit: usize,
    after: Option<usize>,
    before: Option<usize>,
}

impl PageQuery {
    pub fn parse(
        limit: Option<&str>,
        after: Option<&str>,
        before: Option<&str>,
    ) -> Result<Self, MetaFailure> {
        let limit = match limit {
            None => DEFAULT_PAGE,
            Some(raw) => raw
                .parse::<usize>()
                .ok()
                .filter(|l| (1..=MAX_PAGE).contains(l))
                .ok_or_else(|| {
                    MetaFailure::invalid_parameter(format!("limit must be 1-{MAX_PAGE}"))
                })?,
        };
        let offset = |raw: Option<&str>| {
            raw.map(|c| ids::cursor_offset(c).ok_or_else(MetaFailure::invalid_cursor))
                .transpose()
        };
        Ok(PageQuery {
            limit,
            after: offset(after)?,
            before: offset(before)?,
        })
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    fn range(&self, total: usize) -> Range<usize> {
        match (self.after, self.before) {
            (Some(a), _) => a.min(total)..(a + self.limit).min(total),
            (None, Some(b)) => b.min(total).saturating_sub(self.limit)..b.min(total),
            (None, None) => 0..self.limit.min(total),
        }
    }
}

/// One page of a listing, with where it sits in the whole.
pub struct Page {
    pub items: Vec<Value>,
    pub range: Range<usize>,
    pub total: usize,
}

fn page_of<T>(all: &[T], q: &PageQuery, render: impl Fn(&T) -> Value) -> Page {
    let range = q.range(all.len());
    Page {
        items: all[range.clone()].iter().map(render).collect(),
        range,
        total: all.len(),
    }
}

/// What changes in a settings update; at least one part is present.
#[derive(Debug, Default)]
pub struct SettingsChange {
    pub subject: Option<String>,
    pub description: Option<String>,
    pub picture: Option<Vec<u8>>,
}

/// The outcome of approving or rejecting join requests, item by item.
pub struct Decision {
    pub succeeded: Vec<String>,
    pub failed: Vec<(String, MetaFailure)>,
    pub events: Vec<Event>,
}

#[derive(Debug)]
pub enum JoinOutcome {
    Joined,
    Requested(String),
}

#[derive(Debug)]
pub enum LeaveOutcome {
    Left,
    RequestRevoked(String),
}

#[derive(Default)]
struct NumberState {
    groups: BTreeMap<String, Group>,
}

pub struct World {
    numbers: BTreeMap<String, NumberState>,
    next_seq: u64,
}

/// The simulated users have no WhatsApp profile; a name from their number stands in.
/// A person as Meta names them in group info and webhooks: WhatsApp id and business-scoped
/// user id.
fn person(wa_id: &str) -> Value {
    json!({ "wa_id": wa_id, "user_id": ids::user_id(wa_id) })
}

/// A business-scoped user id starts with a country's letters; phone numbers are digits.
fn is_user_id(input: &str) -> bool {
    input.starts_with(|c: char| c.is_ascii_alphabetic())
}

/// Meta's pricing of a message sent to a group: a template is billed as marketing, anything
/// else is a free reply within the group's customer service window.
pub fn group_pricing(kind: &str) -> Value {
    if kind == "template" {
        json!({ "billable": true, "pricing_model": "PMP", "category": "group_marketing", "type": "regular" })
    } else {
        json!({ "billable": false, "pricing_model": "PMP", "category": "group_service", "type": "free_group_customer_service" })
    }
}

fn profile_name(wa_id: &str) -> String {
    let tail = &wa_id[wa_id.len().saturating_sub(4)..];
    format!("Sandbox user {tail}")
}

/// WhatsApp ids are digits; inputs may carry a leading `+`.
fn digits(input: &str) -> &str {
    input.trim().strip_prefix('+').unwrap_or(input.trim())
}

fn subject_rule(raw: &str) -> Result<String, MetaFailure> {
    let trimmed = raw.trim();
    if trimmed.is_empty() || trimmed.chars().count() > MAX_SUBJECT_CHARS {
        return Err(MetaFailure::invalid_parameter(format!(
            "subject must be 1-{MAX_SUBJECT_CHARS} characters after trimming"
        )));
    }
    Ok(trimmed.to_owned())
}

fn description_rule(raw: &str) -> Result<String, MetaFailure> {
    if raw.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(MetaFailure::invalid_parameter(format!(
            "description must be at most {MAX_DESCRIPTION_CHARS} characters"
        )));
    }
    Ok(raw.to_owned())
}

/// Meta's picture rules: JPEG, at most 5 MB, square, at least 192×192.
fn picture_rule(bytes: &[u8]) -> Result<Picture, MetaFailure> {
    if bytes.len() > MAX_PICTURE_BYTES {
        return Err(MetaFailure::invalid_parameter(
            "the picture must be at most 5 MB",
        ));
    }
    if !matches!(imagesize::image_type(bytes), Ok(imagesize::ImageType::Jpeg)) {
        return Err(MetaFailure::invalid_parameter(
            "the picture must be image/jpeg",
        ));
    }
    let size = imagesize::blob_size(bytes)
        .map_err(|_| MetaFailure::invalid_parameter("the JPEG header cannot be read"))?;
    if size.width != size.height {
        return Err(MetaFailure::picture_not_square(size.width, size.height));
    }
    if size.width < MIN_PICTURE_SIDE {
        return Err(MetaFailure::picture_too_small(size.width, size.height));
    }
    Ok(Picture {
        sha256: hex::encode(Sha256::digest(bytes)),
        width: size.width,
        height: size.height,
        bytes: bytes.len(),
    })
}

impl World {
    pub fn new(numbers: impl IntoIterator<Item = String>) -> Self {
        World {
            numbers: numbers
                .into_iter()
                .map(|pn| (pn, NumberState::default()))
                .collect(),
            next_seq: 0,
        }
    }

    /// Gives numbers that have none their (empty) state.
    pub fn know_numbers(&mut self, numbers: &[String]) {
        for pn in numbers {
            if !self.numbers.contains_key(pn) {
                self.numbers.insert(pn.clone(), NumberState::default());
            }
        }
    }

    fn number_mut(&mut self, pn: &str) -> Result<&mut NumberState, MetaFailure> {
        self.numbers
            .get_mut(pn)
            .ok_or_else(|| MetaFailure::unsupported("POST", pn))
    }

    /// A group on one of `pns` (the numbers the caller's token serves); any other group is
    /// unknown to the caller, as for Meta.
    fn group(&self, pns: &[String], id: &str) -> Result<&Group, MetaFailure> {
        pns.iter()
            .filter_map(|pn| self.numbers.get(pn))
            .find_map(|n| n.groups.get(id))
            .ok_or_else(|| MetaFailure::unknown_group(id))
    }

    fn group_mut(&mut self, pns: &[String], id: &str) -> Result<&mut Group, MetaFailure> {
        self.numbers
            .iter_mut()
            .filter(|(pn, _)| pns.contains(pn))
            .find_map(|(_, n)| n.groups.get_mut(id))
            .ok_or_else(|| MetaFailure::unknown_group(id))
    }

    /// A group whatever its number (the users' side does not hold a business token).
    fn any_group_mut(&mut self, id: &str) -> Result<&mut Group, ApiError> {
        self.numbers
            .values_mut()
            .find_map(|n| n.groups.get_mut(id))
            .ok_or_else(|| ApiError::NotFound(format!("the sandbox has no group {id}")))
    }

    /// The group a user acts on (join, write, leave) and the user's number as digits.
    fn user_side<'a>(
        &mut self,
        id: &str,
        wa_id: &'a str,
    ) -> Result<(&mut Group, &'a str), ApiError> {
        Ok((self.any_group_mut(id)?, digits(wa_id)))
    }

    /// The phone number of a group on one of `pns`.
    pub fn number_of_group(&self, pns: &[String], id: &str) -> Option<String> {
        self.group(pns, id).ok().map(|g| g.pn.clone())
    }

    pub fn inspect(&self, id: &str) -> Option<Value> {
        self.numbers
            .values()
            .find_map(|n| n.groups.get(id))
            .map(Group::inspect)
    }

    pub fn summaries(&self, pn: Option<&str>) -> Vec<Value> {
        let mut groups: Vec<&Group> = self
            .numbers
            .iter()
            .filter(|(number, _)| pn.is_none_or(|p| p == number.as_str()))
            .flat_map(|(_, n)| n.groups.values())
            .collect();
        groups.sort_by_key(|g| g.seq);
        groups.into_iter().map(Group::summary).collect()
    }

    // ---- the business side (Graph calls) -----------------------------------------------

    /// `POST /{pn}/groups`: Meta answers a request id; the group arrives by webhook.
    pub fn create_group(
        &mut self,
        pn: &str,
        subject: &str,
        description: Option<&str>,
        mode: ApprovalMode,
        now: i64,
    ) -> Result<(String, Event), MetaFailure> {
        let subject = subject_rule(subject)?;
        let description = description.map(description_rule).transpose()?;
        let seq = self.next_seq;
        let number = self.number_mut(pn)?;
        if number.groups.len() >= MAX_GROUPS_PER_NUMBER {
            return Err(MetaFailure::group_limit(MAX_GROUPS_PER_NUMBER));
        }
        let (id, jid) = loop {
            let jid = ids::group_number();
            let id = ids::group_id(pn, &jid);
            if !number.groups.contains_key(&id) {
                break (id, jid);
            }
        };
        let group = Group {
            id: id.clone(),
            pn: pn.to_owned(),
            seq,
            number: jid,
            subject,
            description,
            mode,
            created_at: now,
            participants: Vec::new(),
            join_requests: Vec::new(),
            invite_code: ids::invite_code(),
            revoked_codes: Vec::new(),
            removed: BTreeSet::new(),
            suspended: false,
            picture: None,
            invitations: Vec::new(),
            messages: Vec::new(),
        };
        let request_id = ids::request_id();
        let event = group.event(
            Field::Lifecycle,
            "group_create",
            now,
            json!({
                "request_id": request_id,
                "subject": group.subject,
                "invite_link": group.invite_link(),
                "join_approval_mode": mode.as_str(),
            }),
        );
        number.groups.insert(id, group);
        self.next_seq += 1;
        Ok((request_id, event))
    }

    /// `GET /{pn}/groups`, in creation order.
    pub fn list_groups(&self, pn: &str, q: &PageQuery) -> Result<Page, MetaFailure> {
        let number = self
            .numbers
            .get(pn)
            .ok_or_else(|| MetaFailure::unsupported("GET", pn))?;
        let mut groups: Vec<&Group> = number.groups.values().collect();
        groups.sort_by_key(|g| g.seq);
        // Meta's reference quotes `created_at`; the gateway reads either form.
        Ok(page_of(
            &groups,
            q,
            |g| json!({ "id": g.id, "subject": g.subject, "created_at": g.created_at.to_string() }),
        ))
    }

    /// `GET /{group_id}?fields=…`: the id and the requested fields only.
    pub fn group_info(
        &self,
        pns: &[String],
        id: &str,
        fields: Option<&str>,
    ) -> Result<Value, MetaFailure> {
        let group = self.group(pns, id)?;
        let mut out = json!({ "messaging_product": "whatsapp", "id": group.id });
        for field in fields
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
        {
            let value = match field {
                "id" => continue,
                "subject" => json!(group.subject),
                // Graph leaves out a field that has no value.
                "description" => match &group.description {
                    Some(d) => json!(d),
                    None => continue,
                },
                "participants" => group.participants_json(),
                "join_approval_mode" => json!(group.mode.as_str()),
                "suspended" => json!(group.suspended),
                "creation_timestamp" => json!(group.created_at),
                "total_participant_count" => json!(group.participants.len()),
                other => {
                    return Err(MetaFailure::invalid_parameter(format!(
                        "Tried accessing nonexisting field ({other}) on node type (WhatsAppGroup); \
                         known fields: {}",
                        GROUP_FIELDS.join(", ")
                    )));
                }
            };
            out[field] = value;
        }
        Ok(out)
    }

    /// `POST /{group_id}`: subject, description and/or picture; the outcome is a webhook.
    pub fn update_settings(
        &mut self,
        pns: &[String],
        id: &str,
        change: SettingsChange,
        now: i64,
    ) -> Result<(String, Event), MetaFailure> {
        if change.subject.is_none() && change.description.is_none() && change.picture.is_none() {
            return Err(MetaFailure::invalid_parameter(
                "send at least one of subject, description or file",
            ));
        }
        let subject = change.subject.as_deref().map(subject_rule).transpose()?;
        let description = change
            .description
            .as_deref()
            .map(description_rule)
            .transpose()?;
        let picture = change.picture.as_deref().map(picture_rule).transpose()?;
        let group = self.group_mut(pns, id)?;
        group.usable()?;
        let request_id = ids::request_id();
        let mut details = json!({ "request_id": request_id });
        if let Some(picture) = picture {
            details["profile_picture"] = json!({
                "mime_type": "image/jpeg",
                "sha256": picture.sha256,
                "update_successful": true,
            });
            group.picture = Some(picture);
        }
        if let Some(subject) = subject {
            details["group_subject"] = json!({ "text": subject, "update_successful": true });
            group.subject = subject;
        }
        if let Some(description) = description {
            details["group_description"] =
                json!({ "text": description, "update_successful": true });
            group.description = Some(description);
        }
        let event = group.event(Field::Settings, "group_settings_update", now, details);
        Ok((request_id, event))
    }

    /// `DELETE /{group_id}`: every participant goes, the business included.
    pub fn delete_group(
        &mut self,
        pns: &[String],
        id: &str,
        now: i64,
    ) -> Result<Event, MetaFailure> {
        let pn = self.group(pns, id)?.pn.clone();
        self.number_mut(&pn)?.groups.remove(id);
        // The group is gone: the event names it by the id it had.
        Ok(Event::about_group(
            &pn,
            Field::Lifecycle,
            id,
            "group_delete",
            now,
            json!({ "request_id": ids::request_id() }),
        ))
    }

    pub fn invite_link(&self, pns: &[String], id: &str) -> Result<String, MetaFailure> {
        Ok(self.group(pns, id)?.invite_link())
    }

    /// `POST /{group_id}/invite_link`: a new link; every earlier one stops working.
    pub fn reset_invite_link(&mut self, pns: &[String], id: &str) -> Result<String, MetaFailure> {
        let group = self.group_mut(pns, id)?;
        group.usable()?;
        let old = std::mem::replace(&mut group.invite_code, ids::invite_code());
        group.revoked_codes.push(old);
        Ok(group.invite_link())
    }

    pub fn list_join_requests(
        &self,
        pns: &[String],
        id: &str,
        q: &PageQuery,
    ) -> Result<Page, MetaFailure> {
        let group = self.group(pns, id)?;
        Ok(page_of(&group.join_requests, q, Group::join_request_json))
    }

    /// `POST` (approve) or `DELETE` (reject) `/{group_id}/join_requests`, item by item.
    pub fn decide_join_requests(
        &mut self,
        pns: &[String],
        id: &str,
        request_ids: &[String],
        approve: bool,
        now: i64,
    ) -> Result<Decision, MetaFailure> {
        let group = self.group_mut(pns, id)?;
        let mut decision = Decision {
            succeeded: Vec::new(),
            failed: Vec::new(),
            events: Vec::new(),
        };
        let mut added = Vec::new();
        for jr_id in request_ids {
            let Some(pos) = group.join_requests.iter().position(|jr| &jr.id == jr_id) else {
                decision
                    .failed
                    .push((jr_id.clone(), MetaFailure::unknown_join_request(jr_id)));
                continue;
            };
            if approve && group.is_full() {
                decision.failed.push((
                    jr_id.clone(),
                    MetaFailure::participant_overlimit(format!(
                        "the group already has {MAX_PARTICIPANTS} participants"
                    )),
                ));
                continue;
            }
            let jr = group.join_requests.remove(pos);
            if approve {
                group.removed.remove(&jr.wa_id);
                group.participants.push(jr.wa_id.clone());
                added.push(json!({ "input": jr.wa_id, "wa_id": jr.wa_id, "user_id": ids::user_id(&jr.wa_id) }));
            }
            decision.succeeded.push(jr.id);
        }
        if !added.is_empty() {
            decision.events.push(group.event(
                Field::Participants,
                "group_participants_add",
                now,
                json!({ "reason": "invite_link", "added_participants": added }),
            ));
        }
        Ok(decision)
    }

    /// `DELETE /{group_id}/participants`: the removed cannot rejoin through the link.
    pub fn remove_participants(
        &mut self,
        pns: &[String],
        id: &str,
        inputs: &[String],
        now: i64,
    ) -> Result<(String, Event), MetaFailure> {
        if inputs.is_empty() {
            return Err(MetaFailure::invalid_parameter(
                "participants must not be empty",
            ));
        }
        if inputs.len() > MAX_PER_REMOVAL {
            return Err(MetaFailure::participant_overlimit(format!(
                "at most {MAX_PER_REMOVAL} participants per request"
            )));
        }
        let mut seen = BTreeSet::new();
        for input in inputs {
            let identity = if is_user_id(input) {
                input.as_str()
            } else {
                digits(input)
            };
            if !seen.insert(identity) {
                return Err(MetaFailure::duplicate_participant(input));
            }
        }
        let group = self.group_mut(pns, id)?;
        let named: Vec<(&String, Option<String>)> = inputs
            .iter()
            .map(|input| (input, group.participant_named(input)))
            .collect();
        let present: Vec<(&String, String)> = named
            .iter()
            .filter_map(|(input, wa_id)| Some((*input, wa_id.clone()?)))
            .collect();
        let absent: Vec<&String> = named
            .iter()
            .filter(|(_, wa_id)| wa_id.is_none())
            .map(|(input, _)| *input)
            .collect();
        if present.is_empty() {
            return Err(MetaFailure::not_a_participant(absent[0]));
        }
        for (_, wa_id) in &present {
            group.participants.retain(|p| p != wa_id);
            group.removed.insert(wa_id.clone());
        }
        let present: Vec<&String> = present.into_iter().map(|(input, _)| input).collect();
        let request_id = ids::request_id();
        let mut details = json!({
            "request_id": request_id,
            "initiated_by": "business",
            "removed_participants": present.iter().map(|i| json!({ "input": i })).collect::<Vec<_>>(),
        });
        if !absent.is_empty() {
            details["failed_participants"] = absent
                .iter()
                .map(
                    |i| json!({ "input": i, "errors": [MetaFailure::not_a_participant(i).item()] }),
                )
                .collect();
            details["errors"] = json!([MetaFailure::partial_success(
                "Not All Participants Remove Succeeded",
                format!(
                    "{} of {} participants were not removed",
                    absent.len(),
                    inputs.len()
                ),
            )
            .item()]);
        }
        let event = group.event(
            Field::Participants,
            "group_participants_remove",
            now,
            details,
        );
        Ok((request_id, event))
    }

    /// An invitation naming a group (the invite template's parameter) needs the group on
    /// this number, not suspended.
    pub fn check_group_for_message(&self, pn: &str, id: &str) -> Result<(), MetaFailure> {
        self.group(&[pn.to_owned()], id)?.usable()
    }

    /// `POST /{pn}/messages` to a group: the message is kept, and Meta's statuses follow —
    /// `sent` once, then `delivered` and `read` for each participant. A group with nobody but
    /// the business cannot be written to (Meta's 131020).
    pub fn send_to_group(
        &mut self,
        pn: &str,
        id: &str,
        kind: &str,
        content: Value,
        message_id: &str,
        now: i64,
    ) -> Result<Vec<Event>, MetaFailure> {
        let group = self.group_mut(&[pn.to_owned()], id)?;
        group.usable()?;
        if group.participants.is_empty() {
            return Err(MetaFailure::single_member_group());
        }
        group.record_message(Message {
            id: message_id.to_owned(),
            from: None,
            kind: kind.to_owned(),
            content,
            at: now,
        });
        let pricing = group_pricing(kind);
        let status = |status: &str, participant: Option<&str>| {
            Event::status(pn, id, message_id, status, participant, &pricing, now)
        };
        let mut events = vec![status("sent", None)];
        for step in ["delivered", "read"] {
            events.extend(group.participants.iter().map(|p| status(step, Some(p))));
        }
        Ok(events)
    }

    /// Keeps the invitation on the group, for inspection.
    pub fn record_invitation(
        &mut self,
        pn: &str,
        id: &str,
        to: &str,
        template: &str,
        message_id: &str,
        now: i64,
    ) -> Result<(), MetaFailure> {
        let group = self.group_mut(&[pn.to_owned()], id)?;
        group.invitations.push(Invitation {
            to: to.to_owned(),
            template: template.to_owned(),
            message_id: message_id.to_owned(),
            sent_at: now,
        });
        Ok(())
    }

    // ---- the users' side ---------------------------------------------------------------

    /// A user taps the invite link: joins, or asks to when approval is required.
    pub fn join(
        &mut self,
        id: &str,
        wa_id: &str,
        invite_link: Option<&str>,
        now: i64,
    ) -> Result<(JoinOutcome, Event), ApiError> {
        let (group, wa_id) = self.user_side(id, wa_id)?;
        if let Some(link) = invite_link {
            let code = link.trim().trim_end_matches('/');
            let code = code.strip_prefix(ids::INVITE_LINK_PREFIX).unwrap_or(code);
            if code != group.invite_code {
                return Err(if group.revoked_codes.iter().any(|c| c == code) {
                    ApiError::Forbidden(
                        "this invite link was reset and no longer works; ask for the new one"
                            .into(),
                    )
                } else {
                    ApiError::Forbidden("this is not an invite link of the group".into())
                });
            }
        }
        if group.suspended {
            return Err(ApiError::Conflict(
                "the group is suspended; nobody can join it".into(),
            ));
        }
        if group.has_participant(wa_id) {
            return Err(ApiError::Conflict(format!(
                "{wa_id} is already a participant"
            )));
        }
        if group.removed.contains(wa_id) {
            return Err(ApiError::Forbidden(format!(
                "{wa_id} was removed by the business and cannot rejoin through the invite link"
            )));
        }
        match group.mode {
            ApprovalMode::ApprovalRequired => {
                if group.join_requests.iter().any(|jr| jr.wa_id == wa_id) {
                    return Err(ApiError::Conflict(format!(
                        "{wa_id} already asked to join; the business has not decided yet"
                    )));
                }
                let jr_id = ids::join_request_id(wa_id, &group.number);
                group.join_requests.push(JoinRequest {
                    id: jr_id.clone(),
                    wa_id: wa_id.to_owned(),
                    created_at: now,
                });
                let event = group.event(
                    Field::Participants,
                    "group_join_request_created",
                    now,
                    json!({ "reason": "invite_link", "join_request_id": jr_id, "wa_id": wa_id, "user_id": ids::user_id(wa_id) }),
                );
                Ok((JoinOutcome::Requested(jr_id), event))
            }
            ApprovalMode::AutoApprove => {
                if group.is_full() {
                    return Err(ApiError::Conflict(format!(
                        "the group is full: it has {MAX_PARTICIPANTS} participants"
                    )));
                }
                group.participants.push(wa_id.to_owned());
                let event = group.event(
                    Field::Participants,
                    "group_participants_add",
                    now,
                    json!({ "reason": "invite_link", "added_participants": [person(wa_id)] }),
                );
                Ok((JoinOutcome::Joined, event))
            }
        }
    }

    /// A participant writes in the group; Meta's inbound webhook names the group on the
    /// message and the writer in `contacts`. Only a participant may write.
    pub fn write(
        &mut self,
        id: &str,
        wa_id: &str,
        text: &str,
        now: i64,
    ) -> Result<(String, Event), ApiError> {
        let (group, wa_id) = self.user_side(id, wa_id)?;
        if !group.has_participant(wa_id) {
            return Err(ApiError::Forbidden(format!(
                "{wa_id} is not a participant of the group; only participants can write in it"
            )));
        }
        if group.suspended {
            return Err(ApiError::Conflict(
                "the group is suspended; nobody can write in it".into(),
            ));
        }
        let message_id = ids::message_id();
        let content = json!({ "body": text });
        group.record_message(Message {
            id: message_id.clone(),
            from: Some(wa_id.to_owned()),
            kind: "text".into(),
            content: content.clone(),
            at: now,
        });
        let event = Event {
            pn: group.pn.clone(),
            field: Field::Messages,
            item: json!({
                "from": wa_id,
                "from_user_id": ids::user_id(wa_id),
                "group_id": group.id,
                "id": message_id,
                "timestamp": now.to_string(),
                "text": content,
                "type": "text",
            }),
            contacts: vec![json!({
                "profile": { "name": profile_name(wa_id) },
                "wa_id": wa_id,
                "user_id": ids::user_id(wa_id),
            })],
        };
        Ok((message_id, event))
    }

    /// A participant leaves, or a user withdraws the request to join.
    pub fn leave(
        &mut self,
        id: &str,
        wa_id: &str,
        now: i64,
    ) -> Result<(LeaveOutcome, Event), ApiError> {
        let (group, wa_id) = self.user_side(id, wa_id)?;
        if group.has_participant(wa_id) {
            group.participants.retain(|p| p != wa_id);
            let event = group.event(
                Field::Participants,
                "group_participants_remove",
                now,
                json!({ "initiated_by": "participant", "removed_participants": [person(wa_id)] }),
            );
            return Ok((LeaveOutcome::Left, event));
        }
        if let Some(pos) = group.join_requests.iter().position(|jr| jr.wa_id == wa_id) {
            let jr = group.join_requests.remove(pos);
            let event = group.event(
                Field::Participants,
                "group_join_request_revoked",
                now,
                json!({ "reason": "user_cancelled", "join_request_id": jr.id, "wa_id": wa_id, "user_id": ids::user_id(wa_id) }),
            );
            return Ok((LeaveOutcome::RequestRevoked(jr.id), event));
        }
        Err(ApiError::Conflict(format!(
            "{wa_id} is neither a participant nor waiting for approval"
        )))
    }

    /// WhatsApp suspends a group (or lifts the suspension); only a change is notified.
    pub fn set_suspended(
        &mut self,
        id: &str,
        suspended: bool,
        now: i64,
    ) -> Result<Option<Event>, ApiError> {
        let group = self.any_group_mut(id)?;
        if group.suspended == suspended {
            return Ok(None);
        }
        group.suspended = suspended;
        let kind = if suspended {
            "group_suspend"
        } else {
            "group_suspend_cleared"
        };
        Ok(Some(group.event(Field::Status, kind, now, json!({}))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::synthetic_jpeg_header;

    const PN: &str = "12784358810";

    fn world() -> World {
        World::new([PN.to_owned(), "999".to_owned()])
    }

    fn pns() -> Vec<String> {
        vec![PN.to_owned()]
    }

    fn group(world: &mut World, mode: ApprovalMode) -> String {
        let (_, event) = world
            .create_group(PN, "  Launch crew ", None, mode, 1)
            .unwrap();
        event.item["group_id"].as_str().unwrap().to_owned()
    }

    /// Where most tests start: a world whose number `PN` holds one group.
    fn world_with_group(mode: ApprovalMode) -> (World, String) {
        let mut w = world();
        let id = group(&mut w, mode);
        (w, id)
    }

    #[test]
    fn creation_answers_a_request_id_and_announces_the_group() {
        let mut w = world();
        let (request_id, event) = w
            .create_group(PN, " Launch crew ", Some("d"), ApprovalMode::AutoApprove, 7)
            .unwrap();
        assert_eq!(event.field, Field::Lifecycle);
        assert_eq!(event.item["request_id"], request_id.as_str());
        assert_eq!(event.item["subject"], "Launch crew");
        assert_eq!(event.item["type"], "group_create");
        assert_eq!(event.item["join_approval_mode"], "auto_approve");
        assert!(
            event.item["invite_link"]
                .as_str()
                .unwrap()
                .starts_with("https://chat.whatsapp.com/")
        );
        assert_eq!(
            w.create_group(PN, "   ", None, ApprovalMode::AutoApprove, 7)
                .unwrap_err()
                .code,
            100
        );
        assert_eq!(
            w.create_group("555", "x", None, ApprovalMode::AutoApprove, 7)
                .unwrap_err()
                .subcode,
            Some(33)
        );
    }

    #[test]
    fn a_number_holds_at_most_ten_thousand_groups() {
        let mut w = world();
        for _ in 0..MAX_GROUPS_PER_NUMBER {
            w.create_group(PN, "g", None, ApprovalMode::AutoApprove, 1)
                .unwrap();
        }
        let err = w
            .create_group(PN, "g", None, ApprovalMode::AutoApprove, 1)
            .unwrap_err();
        assert_eq!(err.code, 131211);
        // Another number is not affected.
        assert!(
            w.create_group("999", "g", None, ApprovalMode::AutoApprove, 1)
                .is_ok()
        );
    }

    #[test]
    fn groups_are_private_to_their_number() {
        let (w, id) = world_with_group(ApprovalMode::AutoApprove);
        let err = w.group_info(&["999".to_owned()], &id, None).unwrap_err();
        assert_eq!(err.code, 131041);
        let info = w
            .group_info(&pns(), &id, Some("subject,participants"))
            .unwrap();
        assert_eq!(info["subject"], "Launch crew");
        assert_eq!(info["participants"], json!([]));
        assert!(info.get("suspended").is_none());
        assert_eq!(
            w.group_info(&pns(), &id, Some("nope")).unwrap_err().code,
            100
        );
    }

    #[test]
    fn a_group_never_exceeds_eight_participants() {
        let (mut w, id) = world_with_group(ApprovalMode::AutoApprove);
        for i in 0..MAX_PARTICIPANTS {
            w.join(&id, &format!("1650555{i:04}"), None, 1).unwrap();
        }
        let err = w.join(&id, "16505559999", None, 1).unwrap_err();
        assert!(matches!(err, ApiError::Conflict(_)), "{err}");
    }

    #[test]
    fn approvals_are_item_by_item_and_respect_the_limit() {
        let (mut w, id) = world_with_group(ApprovalMode::ApprovalRequired);
        let mut requests = Vec::new();
        for i in 0..=MAX_PARTICIPANTS {
            match w.join(&id, &format!("1650555{i:04}"), None, 1).unwrap().0 {
                JoinOutcome::Requested(jr) => requests.push(jr),
                JoinOutcome::Joined => panic!("approval is required"),
            }
        }
        let mut ids = requests.clone();
        ids.push("bogus".into());
        let d = w.decide_join_requests(&pns(), &id, &ids, true, 2).unwrap();
        assert_eq!(d.succeeded.len(), MAX_PARTICIPANTS);
        let codes: Vec<i64> = d.failed.iter().map(|(_, f)| f.code).collect();
        assert_eq!(codes, [131204, 131213]);
        assert_eq!(d.events.len(), 1);
        assert_eq!(
            d.events[0].item["added_participants"]
                .as_array()
                .unwrap()
                .len(),
            MAX_PARTICIPANTS
        );
        // The one left can be rejected, once.
        let last = requests.last().unwrap().clone();
        let d = w
            .decide_join_requests(&pns(), &id, std::slice::from_ref(&last), false, 3)
            .unwrap();
        assert_eq!(d.succeeded, std::slice::from_ref(&last));
        assert!(d.events.is_empty());
        let d = w
            .decide_join_requests(&pns(), &id, &[last], false, 3)
            .unwrap();
        assert_eq!(d.failed[0].1.code, 131213);
    }

    #[test]
    fn removal_rules() {
        let (mut w, id) = world_with_group(ApprovalMode::AutoApprove);
        w.join(&id, "16505551234", None, 1).unwrap();
        // The code of a removal that is refused as a whole.
        let refusal = |w: &mut World, inputs: &[String]| {
            w.remove_participants(&pns(), &id, inputs, 2)
                .unwrap_err()
                .code
        };
        let too_many: Vec<String> = (0..9).map(|i| format!("1650555000{i}")).collect();
        assert_eq!(refusal(&mut w, &too_many), 131204);
        let dup = vec!["+16505551234".to_owned(), "16505551234".to_owned()];
        assert_eq!(refusal(&mut w, &dup), 131202);
        let absent = vec!["16505550000".to_owned()];
        assert_eq!(refusal(&mut w, &absent), 131212);
        let mixed = vec!["+16505551234".to_owned(), "16505550000".to_owned()];
        let (_, event) = w.remove_participants(&pns(), &id, &mixed, 2).unwrap();
        assert_eq!(
            event.item["removed_participants"],
            json!([{ "input": "+16505551234" }])
        );
        assert_eq!(event.item["initiated_by"], "business");
        assert_eq!(event.item["failed_participants"][0]["input"], "16505550000");
        assert_eq!(event.item["errors"][0]["code"], 131201);
        // Removed by the business: the link no longer lets them in.
        let err = w.join(&id, "16505551234", None, 3).unwrap_err();
        assert!(matches!(err, ApiError::Forbidden(_)), "{err}");
    }

    #[test]
    fn a_reset_link_stops_working() {
        let (mut w, id) = world_with_group(ApprovalMode::AutoApprove);
        let old = w.invite_link(&pns(), &id).unwrap();
        let new = w.reset_invite_link(&pns(), &id).unwrap();
        assert_ne!(old, new);
        let err = w.join(&id, "16505551234", Some(&old), 1).unwrap_err();
        assert!(err.to_string().contains("reset"), "{err}");
        w.join(&id, "16505551234", Some(&new), 1).unwrap();
    }

    #[test]
    fn picture_rules() {
        let (mut w, id) = world_with_group(ApprovalMode::AutoApprove);
        let set = |w: &mut World, bytes: Vec<u8>| {
            w.update_settings(
                &pns(),
                &id,
                SettingsChange {
                    picture: Some(bytes),
                    ..Default::default()
                },
                1,
            )
        };
        assert_eq!(
            set(&mut w, synthetic_jpeg_header(256, 200))
                .unwrap_err()
                .code,
            131209
        );
        assert_eq!(
            set(&mut w, synthetic_jpeg_header(100, 100))
                .unwrap_err()
                .code,
            131210
        );
        assert_eq!(set(&mut w, b"GIF89a....".to_vec()).unwrap_err().code, 100);
        let (_, event) = set(&mut w, synthetic_jpeg_header(256, 256)).unwrap();
        assert_eq!(event.item["profile_picture"]["update_successful"], true);
        assert!(event.item.get("group_subject").is_none());
    }

    #[test]
    fn suspension_blocks_changes_and_is_notified_once() {
        let (mut w, id) = world_with_group(ApprovalMode::AutoApprove);
        assert!(w.set_suspended(&id, true, 1).unwrap().is_some());
        assert!(w.set_suspended(&id, true, 1).unwrap().is_none());
        let change = SettingsChange {
            subject: Some("x".into()),
            ..Default::default()
        };
        assert_eq!(
            w.update_settings(&pns(), &id, change, 1).unwrap_err().code,
            131207
        );
        let event = w.set_suspended(&id, false, 1).unwrap().unwrap();
        assert_eq!(event.item["type"], "group_suspend_cleared");
    }

    #[test]
    fn a_message_to_a_group_is_sent_then_delivered_and_read_by_each_participant() {
        let (mut w, id) = world_with_group(ApprovalMode::AutoApprove);
        let text = json!({ "body": "hi" });
        // Nobody but the business yet: Meta refuses.
        let err = w
            .send_to_group(PN, &id, "text", text.clone(), "wamid.1", 5)
            .unwrap_err();
        assert_eq!(err.code, 131020);
        w.join(&id, "16505551234", None, 1).unwrap();
        w.join(&id, "16505550000", None, 1).unwrap();
        let events = w
            .send_to_group(PN, &id, "text", text.clone(), "wamid.2", 5)
            .unwrap();
        let statuses: Vec<(&str, Option<&str>)> = events
            .iter()
            .map(|e| (e.kind(), e.item["recipient_participant_id"].as_str()))
            .collect();
        assert_eq!(
            statuses,
            [
                ("sent", None),
                ("delivered", Some("16505551234")),
                ("delivered", Some("16505550000")),
                ("read", Some("16505551234")),
                ("read", Some("16505550000")),
            ]
        );
        assert!(events.iter().all(|e| e.list() == "statuses"
            && e.group_id() == Some(id.as_str())
            && e.item["recipient_type"] == "group"
            && e.item["id"] == "wamid.2"));
        assert_eq!(
            w.inspect(&id).unwrap()["messages"][0]["message_id"],
            "wamid.2"
        );
        // Another number's group is unknown; a suspended one refuses.
        let err = w.send_to_group("999", &id, "text", text.clone(), "wamid.3", 5);
        assert_eq!(err.unwrap_err().code, 131041);
        w.set_suspended(&id, true, 6).unwrap();
        let err = w.send_to_group(PN, &id, "text", text, "wamid.4", 6);
        assert_eq!(err.unwrap_err().code, 131207);
    }

    #[test]
    fn only_participants_write_and_meta_names_group_and_writer() {
        let (mut w, id) = world_with_group(ApprovalMode::AutoApprove);
        let err = w.write(&id, "16505551234", "hello", 1).unwrap_err();
        assert!(matches!(err, ApiError::Forbidden(_)), "{err}");
        w.join(&id, "+16505551234", None, 1).unwrap();
        let (message_id, event) = w.write(&id, "+16505551234", "hello", 2).unwrap();
        assert_eq!(event.field, Field::Messages);
        assert_eq!(event.list(), "messages");
        assert_eq!(event.item["group_id"], id.as_str());
        assert_eq!(event.item["from"], "16505551234");
        assert_eq!(event.item["id"], message_id.as_str());
        assert_eq!(event.item["text"]["body"], "hello");
        assert_eq!(event.contacts[0]["wa_id"], "16505551234");
        assert_eq!(event.contacts[0]["profile"]["name"], "Sandbox user 1234");
        assert!(matches!(
            w.write("nope", "16505551234", "x", 2).unwrap_err(),
            ApiError::NotFound(_)
        ));
    }

    #[test]
    fn listings_page_in_creation_order() {
        let mut w = world();
        let ids: Vec<String> = (0..5)
            .map(|_| group(&mut w, ApprovalMode::AutoApprove))
            .collect();
        let q = PageQuery::parse(Some("2"), None, None).unwrap();
        let first = w.list_groups(PN, &q).unwrap();
        assert_eq!(first.items[0]["id"], ids[0].as_str());
        assert_eq!(first.range, 0..2);
        let next = PageQuery::parse(Some("2"), Some(&ids::cursor(first.range.end)), None).unwrap();
        let second = w.list_groups(PN, &next).unwrap();
        assert_eq!(second.items[0]["id"], ids[2].as_str());
        let back =
            PageQuery::parse(Some("2"), None, Some(&ids::cursor(second.range.start))).unwrap();
        assert_eq!(w.list_groups(PN, &back).unwrap().range, 0..2);
        assert_eq!(
            PageQuery::parse(None, Some("garbage"), None)
                .unwrap_err()
                .code,
            131059
        );
        assert_eq!(
            PageQuery::parse(Some("0"), None, None).unwrap_err().code,
            100
        );
    }
}
