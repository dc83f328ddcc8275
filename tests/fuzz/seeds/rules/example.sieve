# rules.sieve - example Sieve rules for a verification-mail site.
#
# vmingestd runs this once per message (docs/RULES.md).  fileinto "TOPIC"
# publishes the record on TOPIC; the implicit keep publishes on the queue's
# default topic; discard stores the record as DISCARDED; quarantine stores
# it QUARANTINED with the reason.  Check with:
#     vmingest rules check /etc/vmingest/rules.sieve
#     vmingest rules test /etc/vmingest/rules.sieve message.eml

require ["fileinto", "copy", "envelope", "regex", "variables", "relational",
         "comparator-i;ascii-numeric", "body", "vnd.vmingest"];

# Mail loops and bounces from our own systems never reach the feed.
if address :is "from" ["mailer-daemon@idc.example", "postmaster@idc.example"] {
    fileinto "mail.bounce";
    stop;
}

# No IMS/GSE content at all: ordinary mail for the operators.
if ims :value "eq" :comparator "i;ascii-numeric" "count" "0" {
    if header :contains "subject" ["help", "HELP"] {
        fileinto "mail.help";
    } else {
        fileinto "mail.other";
    }
    stop;
}

# IMS messages that did not reach STOP are stored, not published.
if ims "complete" "false" {
    quarantine "IMS message without STOP";
    stop;
}

# Requests go to the request handlers, by request keyword.
if ims "msg_type" "REQUEST" {
    if ims :matches "request" "*" {
        set :lower "kw" "${1}";
    }
    if string :regex "${kw}" "^[a-z0-9_]+$" {
        fileinto "ims.request.${kw}";
    } else {
        fileinto "ims.request";
    }
    stop;
}

# Data messages: radionuclide products get their own topic, everything is
# also published by data type.
if ims "msg_type" "DATA" {
    if ims "data_type" ["RLR", "ARR", "SAMPLEPHD", "BLANKPHD", "DETBKPHD",
                        "QCPHD", "CALIBPHD", "GASBKPHD"] {
        fileinto :copy "rn.phd";
        label "radionuclide";
    }
    if ims :matches "data_type" "*" {
        set :lower "dt" "${1}";
    }
    if string :regex "${dt}" "^[a-z0-9_]+$" {
        fileinto "ims.data.${dt}";
    } else {
        fileinto "ims.data";
    }
    # Station of interest: flag it for the analysts.
    if ims "station" ["ARCES", "FINES", "NOA"] {
        label "priority-station";
    }
    stop;
}

# Anything else (SUBSCRIPTION, PROBLEM, ...) stays on the default topic.
keep;
