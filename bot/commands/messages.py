"""Every sentence the bot says to a person, in one place (tone, review, translation).

Templates use `str.format` fields. Slack mrkdwn is allowed (`*bold*`, `code`);
the console renderer strips what it cannot show.
"""

from __future__ import annotations

# --- grammar -------------------------------------------------------------------------
TOO_LONG = "That is too long for a command (over {limit} characters)."
ONE_LINE = "Send one command per message, on one line."
USER_IS_A_LINK = "USER should be a SendGrid username or e-mail, not a Slack mention or link."
USER_TOO_LONG = "USER is longer than SendGrid allows ({limit} characters)."
USER_CHARACTERS = "`{user}` is not a SendGrid username: use letters, digits and `. - _ @ +` only."
NOT_A_NUMBER = "`{value}` is not a whole number of credits. Write it as `1500` or `1,500`."
ZERO_CREDITS = "The number of credits must be at least 1."
TOO_MANY_CREDITS = "That is more credits than SendGrid accepts (at most {limit:,})."
BAD_PERIOD = "`{value}` is not a period: use `daily`, `weekly` or `monthly`."
UNKNOWN_OPTION = "`{value}` is not an option here: use `start=`, `end=` or `initial=`."
REPEATED_OPTION = "`{name}=` is given twice."
BAD_DATE = "`{name}={value}` is not a date: write it as YYYY-MM-DD."
MISSING_ARGUMENTS = "Something is missing."
EXTRA_ARGUMENTS = "Unexpected extra words: `{extra}`."
REASON_TOO_LONG = "The reason is too long (at most {limit} characters)."
DID_YOU_MEAN = "There is no `{value}` subcommand. Did you mean `{suggestion}`?"
UNKNOWN_SUBCOMMAND = "There is no `{value}` subcommand."
USAGE_LINE = "Usage: `{usage}`"
NOT_A_REQUEST_ID = "`{value}` is not a request number: write it as shown on the request, `12`."
BAD_RESOLUTION = "`{value}` is not an outcome: use `applied` or `not-applied`."

# --- help ----------------------------------------------------------------------------
HELP_TITLE = "Credits bot"
HELP_INTRO = "Look after SendGrid customers' email credits. Your role: *{role}*."
HELP_NO_ROLE = (
    "You have no role yet, so you can only read this help. "
    "Ask an admin to add your Slack user ID ({user_id}) or one of your user groups."
)
# One sentence per subcommand, named in its registry record (bot/commands/registry.py).
HELP_HELP = "this help"
HELP_SHOW = "balance, allowance and last reset"
HELP_OVERVIEW = "a reseller customer's account overview"
HELP_ADD = "add N credits"
HELP_REMOVE = "take N credits away"
HELP_SET = "set the balance to exactly N"
HELP_RECURRING = "reset the balance to N every day, week or month"
HELP_UNLIMIT = "remove the credit limit"
HELP_PENDING = "open approval requests"
HELP_AUDIT = "the latest 20 changes and decisions (for one USER, if given)"
HELP_THRESHOLD = "warn when USER is at or below N credits (instead of the default)"
HELP_APPROVE = "approve request ID (as its Approve button does)"
HELP_DENY = "deny request ID, with an optional reason the requester sees"
HELP_CANCEL = "withdraw your own request ID"
HELP_RESOLVE = "after checking the balance, record whether an unconfirmed change was applied"
HELP_WHOAMI = "your role, what you may do, and why"

# --- whoami --------------------------------------------------------------------------
WHOAMI_ROLE = "Your role: *{role}*."
WHOAMI_BY_USER = "It is granted to your user ID `{id}`."
WHOAMI_BY_GROUP = "It is granted to the user group <!subteam^{id}> (`{id}`), which you are in."
WHOAMI_NOTHING = (
    "No user ID or user group grants you a role. To get one, ask an admin to add your "
    "Slack user ID (`{user_id}`) or one of your user groups."
)
WHOAMI_UNVERIFIED = (
    "Your user groups could not be checked ({reason}), so only what your user ID "
    "grants is counted; a group may give you more once Slack answers."
)
WHOAMI_MAY = "You may use: {names}."
HELP_OPERATOR_NOTE = "Changes other than `add` up to {limit:,} credits need an approver."
HELP_OPERATOR_NOTE_NO_AUTO = "Your changes need an approver."

# --- refusals ------------------------------------------------------------------------
REFUSED = "`{verb}` needs the *{role}* role; you have {current}."
REFUSED_UNVERIFIED = (
    "`{verb}` needs the *{role}* role. Your user groups could not be checked "
    "({reason}), so to be safe only {current} is assumed."
)
SNOOZE_NEEDS = "Snoozing alerts needs the *operator* role; you have {role}."
CANCEL_NEEDS = "Withdrawing a request needs the *operator* role; you have {role}."

# --- balances and changes -----------------------------------------------------------
UNLIMITED = "No limit: this account can send without a credit cap."
REMAINING = "*{remaining}* credits remaining"
OF_ALLOWANCE = "of {allowance} {period}"
PERIOD_UNKNOWN = "recurring"
NOT_RECURRING = "One-off balance (no recurring reset)."
LAST_RESET = "Last reset {date}"
CHANGE_DONE = "{verb} done for *{user}*."
CHANGE_AUTO = "Applied without approval (within the {limit:,}-credit auto-approve limit)."
CHANGE_UNKNOWN = (
    "SendGrid did not confirm this change, and it *may or may not have been applied*. "
    "It was not retried. Check the balance below before trying again."
)
BALANCE_UNREADABLE = "The balance could not be read back from SendGrid; run `/credits show {user}`."
BEFORE_AFTER = "{before} → {after}"

NO_LIMIT = "no limit"
CREDITS = "{credits} credits"
USAGE_BAR = "`{bar}` {percent:.0f}% left"
BEFORE_THE_CHANGE = "Before the change: {before}"
SUMMARY_FROM = "from {date}"
SUMMARY_UNTIL = "until {date}"
SUMMARY_STARTING_AT = "starting at {credits}"

# --- credit changes the balance does not allow (bot/domain/credits.py) ---------------
CHANGE_NEEDS_CREDITS = "`{kind}` needs credits"
CHANGE_NO_CREDITS = "`{kind}` takes no credits"
CHANGE_CREDITS_RANGE = "credits must be between 0 and {limit:,}"
CHANGE_PERIOD_RECURRING_ONLY = "a period goes with `recurring` and only with it"
CHANGE_OPTIONS_RECURRING_ONLY = "start, end and initial go with `recurring` only"
CHANGE_END_BEFORE_START = "the end date is before the start date"
NOTHING_TO_CHANGE = (
    "{user} has no credit limit, so there is nothing to {kind} to. "
    "To start limiting it, use `set {user} N`."
)
NOT_ENOUGH_TO_REMOVE = (
    "{user} has only {remaining:,} credits, so {credits:,} cannot be removed; nothing was "
    "changed. To take what is left: `remove {user} {remaining}`."
)

# --- why a subuser is (not) low (bot/domain/alerts.py) --------------------------------
ALERT_NO_LIMIT = "no limit"
ALERT_EXHAUSTED = "no credits left"
ALERT_BELOW = "at or below {below:,}"
ALERT_PERCENT = "{percent:.0f}% of its allowance left"
ALERT_RUNS_OUT = "runs out in ~{hours} h at the current pace"

# --- overview ------------------------------------------------------------------------
OVERVIEW_TITLE = "Overview: {user}"
OVERVIEW_PACKAGE = "Package"
OVERVIEW_REPUTATION = "Reputation"
OVERVIEW_ALLOWED = "Credits allowed"
OVERVIEW_USED = "Credits used"
OVERVIEW_REMAINING = "Credits remaining"
OVERVIEW_OVERAGE = "Overage"
OVERVIEW_REQUESTS = "Requests"
OVERVIEW_BILLING_PERIOD = "Billing period"
OVERVIEW_BILLING_PROCESSED = "Billing processed"
OVERVIEW_NO_PACKAGE = "no package"
OVERVIEW_FALLBACK = "{user}: {package}, {remaining} left"

# --- errors --------------------------------------------------------------------------
ERROR_TITLE = "That did not work"
SG_AUTH = "SendGrid refused the bot's credentials."
SG_AUTH_NEXT = "An admin should check SENDGRID_API_USER and SENDGRID_API_KEY."
SG_UNKNOWN_ACCOUNT = "SendGrid has no subuser or customer called `{user}`."
SG_UNKNOWN_ACCOUNT_NEXT = "Check the spelling; reseller customers are e-mail addresses."
SG_REJECTED = "SendGrid refused the request: {detail}"
SG_RATE_LIMITED = "SendGrid is rate-limiting the bot right now."
SG_RATE_LIMITED_NEXT = "Try again in {seconds} seconds."
SG_RATE_LIMITED_NEXT_SOON = "Try again in a minute."
SG_UNAVAILABLE = "SendGrid could not be reached or failed; nothing was changed."
SG_UNAVAILABLE_NEXT = "Try again in a few minutes."
SG_BAD_RESPONSE = "SendGrid sent an answer the bot could not read; nothing was changed."
SG_OUTCOME_UNKNOWN = CHANGE_UNKNOWN
DIRECTORY_FAILED = (
    "Your role could not be checked because Slack's user groups are unavailable ({reason}). "
    "Nothing was done."
)
UNEXPECTED = (
    "Something went wrong on the bot's side. If you asked for a change, check the balance "
    "with `/credits show` before trying again."
)
STORE_FAILED = "The bot's database is not answering, so nothing was done."
RESTARTING = "The bot is restarting, so nothing was done. Try again in a minute."
CHANGE_ABANDONED = (
    "This change was given up before it was sent (its process looked stopped), "
    "so nothing was done. Try again."
)
NOT_RECORDED_YET = (
    "The bot's database is not answering, so this is not in the audit trail yet; "
    "it will be recorded when the database is back."
)
ABANDONED_NOT_SENT = "the bot stopped before sending this to SendGrid; nothing was changed"
ABANDONED_SENT = (
    "the bot stopped while this was being sent to SendGrid; it may or may not have been "
    "applied — verify the balance before trying again"
)
DIRECT_ABANDONED = "Your change ({summary}) did not finish: {detail}."
NO_CHANGES_WITHOUT_DATABASE = (
    "The bot's database is not answering, so it cannot make changes right now; nothing was done."
)
UNEXPECTED_NEXT = "If it keeps happening, give this error id to an admin: `{error_id}`."

# --- approvals ---------------------------------------------------------------------
APPROVAL_SENT = "Sent for approval as request *#{id}* in <#{channel}>."
APPROVAL_NOT_POSTED = (
    "Recorded as request *#{id}*, but it could not be posted for approval ({reason}). "
    "Approvers can still find it with `/credits pending`; let them know."
)
APPROVAL_WOULD_GIVE = "{before} now → {expected} if approved"
APPROVAL_EXPIRES = "Expires {when} UTC unless an approver decides."
APPROVAL_TITLE = "Credit change request #{id}"
APPROVAL_ASKS = "<@{requester}> asks to *{what}* for *{user}*."
APPROVAL_CONFIRM_TITLE = "Approve #{id}?"
APPROVAL_CONFIRM_TEXT = "This sends `{what}` for {user} to SendGrid now."
APPROVE = "Approve"
DENY = "Deny"
DENY_MODAL_TITLE = "Deny request #{id}"
DENY_REASON_LABEL = "Reason (optional, the requester sees it)"
DENY_SUBMIT = "Deny"
CANCEL = "Cancel"
NO_SUCH_REQUEST = "There is no request #{id}."
OWN_REQUEST = "You cannot decide your own request; another approver has to."
NOT_AN_APPROVER = "Only approvers and admins can decide requests; you have {role}."
DECIDE_UNVERIFIED = (
    "Only approvers and admins can decide requests, and your user groups could not be "
    "checked ({reason}), so nothing was changed."
)
ALREADY_HANDLED = "Request #{id} was already handled by {by}: {outcome}."
REQUEST_EXPIRED = (
    "Request #{id} has expired; nothing was changed. Ask for it again if still needed."
)
DECIDED_BY_YOU = "Request #{id} ({summary}): {outcome}."
CANCELLED_BY_YOU = "Request #{id} ({summary}) is cancelled; nothing was changed."
NOT_YOUR_REQUEST = "Only the person who asked can cancel request #{id}; approvers can deny it."
NOT_UNKNOWN = (
    "Request #{id} is not waiting to be resolved ({outcome}); only changes SendGrid did "
    "not confirm are resolved."
)
RESOLVED_DETAIL = "resolved as {outcome} by <@{by}> after re-reading the balance"
RESOLVED_BY_YOU = "Request #{id} ({summary}) is recorded as {outcome}."
STATUS_TEXT = {
    "pending": "waiting for approval",
    "executing": "approved, being applied now",
    "approved": "approved and applied",
    "failed": "approved, but SendGrid did not apply it",
    "unknown": "approved, but SendGrid did not confirm it — verify the balance",
    "denied": "denied",
    "expired": "expired",
    "cancelled": "cancelled by the requester",
}
OUTCOME_LINE = "*{outcome}* by <@{by}>"
OUTCOME_EXPIRED = "*Expired* — nobody decided in time."
OUTCOME_CANCELLED = "*Cancelled by the requester* (<@{by}>); nothing was changed."
OUTCOME_REASON = "Reason: {reason}"
OUTCOME_DETAIL = "SendGrid: {detail}"
BALANCE_NOW = "Balance now: {balance}."
REQUESTER_NOTICE = "Your request #{id} ({summary}): {outcome}."
REMINDER = (
    "{mentions}: request *#{id}* ({summary}, from <@{requester}>) has waited {waited} "
    "for a decision. Decide here or from anywhere with `/credits approve {id}` or "
    "`/credits deny {id} reason`; it expires {expires} UTC."
)
ESCALATION = (
    "{mentions}: request *#{id}* ({summary}, from <@{requester}>) has waited {waited} and "
    "no approver has decided it. Please take it: `/credits approve {id}` or "
    "`/credits deny {id} reason`; it expires {expires} UTC."
)
REMINDER_NOBODY = "Approvers"
EXPIRED_NOTICE = (
    "Your request #{id} ({summary}) expired: nobody decided it in time, and nothing was "
    "changed. Ask again if it is still needed."
)
LOG_DIRECT = "<@{actor}> *{summary}*{auto}: {before} → {after}{outcome}"
LOG_AUTO = " (auto-approved)"
LOG_UNCONFIRMED = " — SendGrid did not confirm it; verify the balance"
LOG_DECISION = "Request *#{id}* ({summary}, from <@{requester}>): {outcome}{by}"
PENDING_TITLE = "Open requests"
PENDING_NONE = "No open requests."
PENDING_LINE = "*#{id}* {summary} — <@{requester}>, {status}{expiry}"
AUDIT_TITLE = "Audit trail"
AUDIT_TITLE_FOR = "Audit trail: {user}"
AUDIT_NONE = "Nothing recorded yet."
AUDIT_LINE = "`{at}` <@{actor}> *{event}*{request}{target}{what}{people}{outcome}{balances}{reason}"
AUDIT_ASKED_BY = "asked by <@{user}>"
AUDIT_EVENT_WORDS = {
    "requested": "asked for",
    "approved": "approved",
    "denied": "denied",
    "expired": "expired",
    "executed": "applied",
    "changed": "changed",
    "failed": "failed",
    "unknown": "could not confirm",
    "orphaned": "recovered",
    "refused": "was refused",
    "threshold": "set the alert threshold of",
    "snoozed": "snoozed alerts for",
    "cancelled": "cancelled",
    "resolved": "resolved",
    "reminded": "reminded approvers of",
}
AUDIT_OUTCOMES = {
    "ok": "applied",
    "auto": "applied without approval (within the auto-approve limit)",
    "sending": "being sent to SendGrid",
    "pending": "waiting for approval",
    "executing": "approved, being applied",
    "denied": "denied",
    "expired": "expired: nobody decided in time",
    "cancelled": "withdrawn by the requester",
    "applied": "recorded as applied after re-reading the balance",
    "not applied": "recorded as not applied after re-reading the balance",
}
AUDIT_REFUSALS = {
    "not_an_approver": "refused: only approvers and admins decide requests",
    "own_request": "refused: nobody decides their own request",
    "not_the_requester": "refused: only the requester may cancel",
    "needs_role": "refused: their role does not allow it",
}
AUDIT_NOT_APPLIED = "not applied: {detail}"
AUDIT_UNCONFIRMED = "SendGrid did not confirm it, verify the balance: {detail}"

# --- low-credit alerts -------------------------------------------------------------
DIGEST_TITLE = "Low credits: {summary}"
DIGEST_TITLE_CONTINUED = "Low credits (continued {part}/{parts})"
DIGEST_RECOVERED_TITLE = "Credits back to normal"
DIGEST_ALERT_LINE = "{icon} *{user}* — {balance}: {reason}{outlook}{note}"
DIGEST_OUTLOOK = " · runs out in ~{hours} h"
DIGEST_REMINDER = " (still low after a snooze)"
DIGEST_RECOVERED_LINE = ":white_check_mark: *{user}* is back to {balance}"
DIGEST_FAILURES = "Could not read {count} subuser(s): {users}"
DIGEST_FOOTER = "Sweep at {at} UTC: {read} read, {low} low, {exhausted} exhausted."
ADD_CREDITS = "Add credits"
SNOOZE = "Snooze 24 h"
ADD_MODAL_TITLE = "Add credits"
ADD_MODAL_LABEL = "Credits to add to {user}"
ADD_MODAL_SUBMIT = "Add"
SNOOZED = "Alerts for *{user}* are snoozed until {until} UTC."
DIGEST_SNOOZED_BY = ":zzz: snoozed by <@{by}> until {until} UTC"
DIGEST_ADDED_BY = ":white_check_mark: +{amount} by <@{by}>, now {now}{unconfirmed}"
DIGEST_UNCONFIRMED = " (SendGrid did not confirm it: verify the balance)"
DIGEST_REQUESTED_BY = ":hourglass: +{amount} requested by <@{by}> (request #{id})"
RECENT_TOP_UP = ":warning: <@{by}> added {amount} {ago} ago{after}."
RECENT_TOP_UP_REQUESTED = ":warning: <@{by}> asked to add {amount} {ago} ago (request #{id})."
RECENT_TOP_UP_CONFIRM = "Add more only if that was not enough."
THRESHOLD_SET = "Low-credit warnings for *{user}* now start at {below} credits."
RUNS_OUT = "Runs out in ~{hours} h at the recent pace."

# --- money policy ------------------------------------------------------------------
OVER_CEILING = (
    "{credits:,} credits is above this bot's ceiling for one change ({limit:,}, "
    "CREDITS_MAX_CHANGE); nothing was changed. Split it only with an admin's say-so."
)
REASON_REQUIRED = (
    "A reason is required: put it after the arguments, e.g. "
    "`/credits add acme-eu 500 ZD-4411 spring campaign`."
)
BUDGET_SPENT = (
    "Sent for approval instead of applied at once: auto-approved credits in the last 24 h "
    "would pass the {budget:,}-credit budget (you: {by_actor:,}; {user}: {on_target:,})."
)
CONFIRM_TITLE = "Confirm: {summary} for {user}"
CONFIRM_PLAN = (
    ":warning: *{user}* has a recurring allowance of {allowance}. On this SendGrid API, "
    "`{kind}` ends it: the balance becomes a one-off {expected} and *will not reset "
    "any more*. To keep the plan, set it again afterwards with `/credits recurring`."
)
CONFIRM_SIZE = "{credits:,} credits is above {limit:,} (CREDITS_CONFIRM_ABOVE)."
CONFIRM_NOW = "{before} now → {expected} if you confirm. Nothing is sent until you do."
CONFIRM_BUTTON = "Confirm"
HELD_FOR_CONFIRMATION = "held until its author confirms it; nothing was sent"
CONSOLE_CONFIRM = "Type yes to confirm (anything else cancels):"
CONFIRM_GONE = (
    "That confirmation was already used, cancelled or has expired (10 minutes); "
    "nothing was changed. Run the command again if still needed."
)
CONFIRM_CANCELLED = "Cancelled; nothing was changed."
REASON_LINE = "Reason: {reason}"
REASON_LABEL = "Reason (a ticket id or a few words)"
FIRST_APPROVAL = (
    "Request #{id} ({summary}): your approval is recorded (1/2). It needs a second "
    "approver, neither you nor the requester."
)
APPROVALS_PROGRESS = "Approvals: {given}/{needed} — {who}"
APPROVALS_NONE_YET = "none yet"
APPROVAL_BALANCE_NOW = "Balance now"
APPROVAL_IF_APPROVED = "If approved"
APPROVAL_FALLBACK = "Request #{id}: {summary} (from <@{requester}>)"
OUTCOME_FALLBACK = "Request #{id}: {status}"
LOG_DECIDED_BY = " by <@{by}>"
PENDING_EXPIRES = ", expires {when} UTC"
PENDING_FALLBACK = "{count} open request(s)"
NOT_A_BUTTON_REQUEST = "That button does not carry a valid request number."
NO_APPROVAL_CHANNEL = "no approval channel is configured"
ALREADY_APPROVED = "You already approved this request; the second approval must be someone else's."
