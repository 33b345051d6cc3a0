# ruff: noqa: E501  (the shapes keep the long lines real mail systems write)
"""Returned mail as real mail systems write it, built in the tests.

Each builder returns the bytes of one message as delivered to ``to`` (the VERP address
``bounces+TOKEN@kcrush.com``, or a plain address) about a failed delivery to
``recipient``. The shapes follow what each system documents or is known to send:
Postfix's bounce(8), Exim's (multipart/report since 4.9x, plain text before), Sendmail's,
Exchange Online / Outlook.com's NDR, Gmail's DSN, Yahoo's "Failure Notice", RFC 5965's
ARF example, a List-Unsubscribe mailto request, and RFC 3834 / out-of-office auto-replies.
"""

from __future__ import annotations

import hashlib

DATE = "Tue, 27 Feb 2024 09:05:00 -0800"
ORIGINAL = (
    "Return-Path: <{to}>\r\n"
    "From: KCrush Weekly <newsletter@kcrush.com>\r\n"
    "To: <{recipient}>\r\n"
    "Subject: KCrush weekly\r\n"
    "Message-ID: <digest-2024-W09.s1.abcdef@www.kcrush.com>\r\n"
    "{list_unsubscribe}"
    "Date: Tue, 27 Feb 2024 09:00:00 -0800\r\n"
)


def _crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def _original(to: str, recipient: str, list_unsubscribe: str = "") -> str:
    header = f"List-Unsubscribe: {list_unsubscribe}\r\n" if list_unsubscribe else ""
    return ORIGINAL.format(to=to, recipient=recipient, list_unsubscribe=header).replace(
        "\r\n", "\n"
    )


def postfix(to: str, recipient: str, status: str = "5.1.1", action: str = "failed") -> bytes:
    code = "550" if status.startswith("5") else "450"
    return _crlf(f"""\
Return-Path: <>
Delivered-To: {to}
X-Original-To: {to}
Date: {DATE}
From: MAILER-DAEMON@mail.example.org (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: {to}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
	boundary="4F2A12345.1709053500/mail.example.org"
Content-Transfer-Encoding: 8bit
Message-Id: <20240227170500.4F2B1@mail.example.org>

This is a MIME-encapsulated message.

--4F2A12345.1709053500/mail.example.org
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mail.example.org.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

<{recipient}>: host mx.example.org[192.0.2.10] said: {code} {status}
    <{recipient}>: Recipient address rejected: User unknown (in reply to RCPT TO
    command)

--4F2A12345.1709053500/mail.example.org
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mail.example.org
X-Postfix-Queue-ID: 4F2A12345
X-Postfix-Sender: rfc822; {to}
Arrival-Date: Tue, 27 Feb 2024 09:00:01 -0800 (PST)

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: {action}
Status: {status}
Remote-MTA: dns; mx.example.org
Diagnostic-Code: smtp; {code} {status} <{recipient}>: Recipient address rejected:
    User unknown

--4F2A12345.1709053500/mail.example.org
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

{_original(to, recipient)}
--4F2A12345.1709053500/mail.example.org--
""")


def exim(to: str, recipient: str, status: str = "5.1.1") -> bytes:
    code = "550" if status.startswith("5") else "451"
    return _crlf(f"""\
Return-path: <>
Envelope-to: {to}
Delivery-date: {DATE}
Received: from Debian-exim by mx.example.net with local (Exim 4.96)
	id 1rf2Xy-000Abc-2Q
	for {to}; {DATE}
X-Failed-Recipients: {recipient}
Auto-Submitted: auto-replied
From: Mail Delivery System <Mailer-Daemon@mx.example.net>
To: {to}
Content-Type: multipart/report; report-type=delivery-status; boundary=1709053500-eximdsn-1804289383
MIME-Version: 1.0
Subject: Mail delivery failed: returning message to sender
Message-Id: <E1rf2Xy-000Abc-2Q@mx.example.net>
Date: {DATE}

--1709053500-eximdsn-1804289383
Content-type: text/plain; charset=us-ascii

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  {recipient}
    host mx.example.org [192.0.2.10]
    SMTP error from remote mail server after RCPT TO:<{recipient}>:
    {code} {status} User unknown

--1709053500-eximdsn-1804289383
Content-type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Action: failed
Final-Recipient: rfc822;{recipient}
Status: {status}
Remote-MTA: dns; mx.example.org
X-Remote-MTA-smtp-greeting: X-str; 220 mx.example.org ESMTP
X-Remote-MTA-helo-response: X-str; 250 mx.example.org
Diagnostic-Code: smtp; {code} {status} User unknown

--1709053500-eximdsn-1804289383
Content-type: message/rfc822

{_original(to, recipient)}
Hello.

--1709053500-eximdsn-1804289383--
""")


def exim_plain(to: str, recipient: str) -> bytes:
    """Exim before 4.9x (and many hosts still): plain text, no DSN part."""
    return _crlf(f"""\
Return-path: <>
Envelope-to: {to}
Delivery-date: {DATE}
X-Failed-Recipients: {recipient}
Auto-Submitted: auto-replied
From: Mail Delivery System <Mailer-Daemon@mx.example.net>
To: {to}
Subject: Mail delivery failed: returning message to sender
Message-Id: <E1OLFV6-00070a-Ff@mx.example.net>
Date: {DATE}

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  {recipient}
    SMTP error from remote mail server after RCPT TO:<{recipient}>:
    host mx.example.org [192.0.2.10]: 550 5.1.1 No such user here

------ This is a copy of the message, including all the headers. ------

{_original(to, recipient)}
Hello.
""")


def sendmail(to: str, recipient: str, status: str = "5.1.1") -> bytes:
    return _crlf(f"""\
Return-Path: <>
Delivered-To: {to}
Date: {DATE}
From: Mail Delivery Subsystem <MAILER-DAEMON@relay.example.com>
Message-Id: <202402271705.41RH50xA012345@relay.example.com>
To: <{to}>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
	boundary="41RH50xA012345.1709053500/relay.example.com"
Subject: Returned mail: see transcript for details
Auto-Submitted: auto-generated (failure)

This is a MIME-encapsulated message

--41RH50xA012345.1709053500/relay.example.com

The original message was received at {DATE}
from kcrush.com [198.51.100.7]

   ----- The following addresses had permanent fatal errors -----
<{recipient}>
    (reason: 550 {status} User unknown)

   ----- Transcript of session follows -----
... while talking to mx.example.org.:
>>> DATA
<<< 550 {status} <{recipient}>... User unknown
550 {status} <{recipient}>... User unknown

--41RH50xA012345.1709053500/relay.example.com
Content-Type: message/delivery-status

Reporting-MTA: dns; relay.example.com
Received-From-MTA: DNS; kcrush.com
Arrival-Date: {DATE}

Final-Recipient: RFC822; {recipient}
Action: failed
Status: {status}
Remote-MTA: DNS; mx.example.org
Diagnostic-Code: SMTP; 550 {status} <{recipient}>... User unknown
Last-Attempt-Date: {DATE}

--41RH50xA012345.1709053500/relay.example.com
Content-Type: message/rfc822

{_original(to, recipient)}
Hello.

--41RH50xA012345.1709053500/relay.example.com--
""")


def exchange(to: str, recipient: str, status: str = "5.5.0") -> bytes:
    """Exchange Online / Outlook.com: an NDR with a multipart/alternative explanation."""
    return _crlf(f"""\
Delivered-To: {to}
From: Microsoft Outlook <postmaster@outlook.com>
To: <{to}>
Date: {DATE}
Content-Type: multipart/report; report-type=delivery-status;
	boundary="f5b6c8e1-2b7d-4c7e-9a0b-3d9e1c2b4a5f"
Content-Language: en-US
Message-ID: <a1b2c3d4-e5f6-7890-abcd-ef0123456789@DM6PR01MB1234.namprd01.prod.outlook.com>
In-Reply-To: <digest-2024-W09.s1.abcdef@www.kcrush.com>
Subject: Undeliverable: KCrush weekly
Auto-Submitted: auto-replied
X-MS-Exchange-Message-Is-Ndr:
MIME-Version: 1.0

--f5b6c8e1-2b7d-4c7e-9a0b-3d9e1c2b4a5f
Content-Type: multipart/alternative; differences=Content-Type;
	boundary="b8c2d7e4-1a3f-4e6b-8c9d-0f1e2d3c4b5a"

--b8c2d7e4-1a3f-4e6b-8c9d-0f1e2d3c4b5a
Content-Type: text/plain; charset="us-ascii"
Content-Transfer-Encoding: quoted-printable

Your message to {recipient} couldn't be delivered.
{recipient.partition("@")[0]} wasn't found at outlook.com.

Remote Server returned '550 {status} Requested action not taken: mailbox unavailable'

--b8c2d7e4-1a3f-4e6b-8c9d-0f1e2d3c4b5a
Content-Type: text/html; charset="us-ascii"
Content-Transfer-Encoding: quoted-printable

<html><body><p>Your message to {recipient} couldn't be delivered.</p></body></html>

--b8c2d7e4-1a3f-4e6b-8c9d-0f1e2d3c4b5a--

--f5b6c8e1-2b7d-4c7e-9a0b-3d9e1c2b4a5f
Content-Type: message/delivery-status

Reporting-MTA: dns;DM6PR01MB1234.namprd01.prod.outlook.com
Received-From-MTA: dns;kcrush.com
Arrival-Date: {DATE}

Final-Recipient: rfc822;{recipient}
Action: failed
Status: {status}
Diagnostic-Code: smtp;550 {status} Requested action not taken: mailbox unavailable
 (S2017062302). [DM6PR01MB1234.namprd01.prod.outlook.com]

--f5b6c8e1-2b7d-4c7e-9a0b-3d9e1c2b4a5f
Content-Type: text/rfc822-headers

{_original(to, recipient)}
--f5b6c8e1-2b7d-4c7e-9a0b-3d9e1c2b4a5f--
""")


def gmail(to: str, recipient: str, status: str = "5.1.1", action: str = "failed") -> bytes:
    kind = "Failure" if action == "failed" else "Delay"
    code = "550" if status.startswith("5") else "451"
    return _crlf(f"""\
Delivered-To: {to}
Return-Path: <>
From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>
To: {to}
Auto-Submitted: auto-replied
Subject: Delivery Status Notification ({kind})
References: <digest-2024-W09.s1.abcdef@www.kcrush.com>
In-Reply-To: <digest-2024-W09.s1.abcdef@www.kcrush.com>
X-Failed-Recipients: {recipient}
Message-ID: <65dd9b3c.050a0220.1234.abcdGMR@mx.google.com>
Date: {DATE}
MIME-Version: 1.0
Content-Type: multipart/report; boundary="000000000000a1b2c3d4e5f60718"; report-type=delivery-status

--000000000000a1b2c3d4e5f60718
Content-Type: multipart/related; boundary="000000000000a1b2c3d4e5f60729"

--000000000000a1b2c3d4e5f60729
Content-Type: multipart/alternative; boundary="000000000000a1b2c3d4e5f6073a"

--000000000000a1b2c3d4e5f6073a
Content-Type: text/plain; charset="UTF-8"


** Address not found **

Your message wasn't delivered to {recipient} because the address couldn't be found, or is unable to receive mail.

The response from the remote server was:
{code} {status} The email account that you tried to reach does not exist.

--000000000000a1b2c3d4e5f6073a
Content-Type: text/html; charset="UTF-8"

<html><body><h1>Address not found</h1></body></html>

--000000000000a1b2c3d4e5f6073a--
--000000000000a1b2c3d4e5f60729--
--000000000000a1b2c3d4e5f60718
Content-Type: message/delivery-status

Reporting-MTA: dns; googlemail.com
Received-From-MTA: dns; kcrush.com
Arrival-Date: {DATE}
X-Original-Message-ID: <digest-2024-W09.s1.abcdef@www.kcrush.com>

Final-Recipient: rfc822; {recipient}
Action: {action}
Status: {status}
Remote-MTA: dns; gmail-smtp-in.l.google.com. (2607:f8b0:4004:c07::1b,
 the server for the domain gmail.com.)
Diagnostic-Code: smtp; {code}-{status} The email account that you tried to reach does not exist.
Last-Attempt-Date: {DATE}

--000000000000a1b2c3d4e5f60718
Content-Type: message/rfc822

{_original(to, recipient)}
Hello.

--000000000000a1b2c3d4e5f60718--
""")


def yahoo(to: str, recipient: str) -> bytes:
    """Yahoo's "Failure Notice": plain text, no DSN part."""
    return _crlf(f"""\
Delivered-To: {to}
Return-Path: <>
From: MAILER-DAEMON@yahoo.com
To: {to}
Subject: Failure Notice
Date: {DATE}
Message-ID: <1709053500.12345@mta1001.mail.gq1.yahoo.com>

Sorry, we were unable to deliver your message to the following address.

<{recipient}>:
Remote host said: 554 delivery error: dd This user doesn't have a yahoo.com account ({recipient}) [0] - mta1001.mail.gq1.yahoo.com [BODY]

--- Below this line is a copy of the message.

{_original(to, recipient)}
Hello.
""")


def arf(to: str, recipient: str, list_unsubscribe: str = "", feedback: str = "abuse") -> bytes:
    """RFC 5965's example report, about our message, sent to ``to``."""
    return _crlf(f"""\
From: <staff@hotmail.example>
Date: {DATE}
Subject: FW: KCrush weekly
To: <{to}>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report;
     boundary="part1_13d.2e68ed54_boundary"

--part1_13d.2e68ed54_boundary
Content-Type: text/plain; charset="US-ASCII"
Content-Transfer-Encoding: 7bit

This is an email abuse report for an email message received from IP
198.51.100.7 on {DATE}.  For more information about this format
please see http://www.mipassoc.org/arf/.

--part1_13d.2e68ed54_boundary
Content-Type: message/feedback-report

Feedback-Type: {feedback}
User-Agent: SomeGenerator/1.0
Version: 1
Original-Mail-From: <bounces@kcrush.com>
Original-Rcpt-To: <{recipient}>
Arrival-Date: {DATE}
Reporting-MTA: dns; mail.hotmail.example
Source-IP: 198.51.100.7
Authentication-Results: mail.hotmail.example; spf=pass smtp.mail=kcrush.com
Reported-Domain: kcrush.com

--part1_13d.2e68ed54_boundary
Content-Type: message/rfc822
Content-Disposition: inline

{_original("bounces@kcrush.com", recipient, list_unsubscribe)}
Hello.

--part1_13d.2e68ed54_boundary--
""")


def mailto(token: str, sender: str = "reader@example.org", *, in_body: bool = False) -> bytes:
    """What a mail client sends for ``mailto:unsubscribe@kcrush.com?subject=unsubscribe-T``."""
    subject = "unsubscribe" if in_body else f"unsubscribe-{token}"
    body = f"unsubscribe-{token}\n" if in_body else "\n"
    return _crlf(f"""\
Delivered-To: unsubscribe@kcrush.com
From: Reader <{sender}>
To: unsubscribe@kcrush.com
Subject: {subject}
Date: {DATE}
Message-ID: <{hashlib.sha256(token.encode()).hexdigest()[:12]}.{int(in_body)}@example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

{body}""")


def auto_reply(to: str, style: str = "rfc3834") -> bytes:
    headers = {
        "rfc3834": "Auto-Submitted: auto-replied\nSubject: Re: KCrush weekly",
        "outlook": "X-Auto-Response-Suppress: All\nSubject: Automatic reply: KCrush weekly",
        "vacation": "Precedence: bulk\nSubject: Out of Office: back on Monday",
        "x-autoreply": "X-Autoreply: yes\nSubject: Re: KCrush weekly",
    }[style]
    return _crlf(f"""\
Delivered-To: {to}
From: Reader <reader@example.org>
To: {to}
{headers}
Date: {DATE}
Message-ID: <auto.{style}@example.org>
Content-Type: text/plain; charset=utf-8

I am away until Monday. Your message:
> List-Unsubscribe: <mailto:unsubscribe@kcrush.com?subject=unsubscribe-aGVsbG8.AAAAAAAAAAAAAAAAAAAAAA>
""")
