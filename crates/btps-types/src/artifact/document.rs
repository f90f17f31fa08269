//! Business documents carried by transporter artifacts: invoice (§3.7), trust request (§3.8)
//! and trust response (§3.9).

use super::SchemaError;
use super::rules::{
    Fields, array, base64, email, enumeration, fail, is_currency_code, number, object, quote,
    string, string_array, url, wire_enum,
};
use crate::json::{Object, Value};

wire_enum! {
    /// The transporter `type` (PROTOCOL.md §1.3): which business document it carries.
    pub enum TransporterType {
        /// `TRUST_REQ`: consent request ([`TrustReq`]).
        TrustReq = "TRUST_REQ",
        /// `TRUST_RES`: consent decision ([`TrustRes`]).
        TrustRes = "TRUST_RES",
        /// `BTPS_DOC`: an invoice ([`Invoice`]).
        BtpsDoc = "BTPS_DOC",
    }
}

wire_enum! {
    /// Invoice `status` (PROTOCOL.md §3.7).
    pub enum InvoiceStatus {
        /// `paid`.
        Paid = "paid",
        /// `unpaid`.
        Unpaid = "unpaid",
        /// `partial`.
        Partial = "partial",
        /// `refunded`.
        Refunded = "refunded",
        /// `disputed`.
        Disputed = "disputed",
    }
}

wire_enum! {
    /// Invoice attachment MIME type (PROTOCOL.md §3.7).
    pub enum AttachmentType {
        /// `application/pdf`.
        Pdf = "application/pdf",
        /// `image/jpeg`.
        Jpeg = "image/jpeg",
        /// `image/png`.
        Png = "image/png",
    }
}

wire_enum! {
    /// Trust decision (PROTOCOL.md §3.9).
    pub enum TrustDecision {
        /// `accepted`.
        Accepted = "accepted",
        /// `rejected`.
        Rejected = "rejected",
        /// `revoked`.
        Revoked = "revoked",
        /// `blocked`.
        Blocked = "blocked",
    }
}

wire_enum! {
    /// Requested or granted privacy policy (PROTOCOL.md §3.8, §3.9, §7.3).
    pub enum PrivacyType {
        /// `unencrypted`.
        Unencrypted = "unencrypted",
        /// `encrypted`.
        Encrypted = "encrypted",
        /// `mixed`.
        Mixed = "mixed",
    }
}

/// A plain business document, typed by the transporter `type`.
#[derive(Clone, Debug, PartialEq)]
pub enum BusinessDocument<'a> {
    /// `TRUST_REQ`.
    TrustReq(TrustReq<'a>),
    /// `TRUST_RES`.
    TrustRes(TrustRes<'a>),
    /// `BTPS_DOC`.
    Invoice(Invoice<'a>),
}

impl<'a> BusinessDocument<'a> {
    /// Validates `value` against the schema of `kind`.
    ///
    /// # Errors
    ///
    /// [`SchemaError`] with the path inside the document.
    pub fn validate(kind: TransporterType, value: &'a Value) -> Result<Self, SchemaError> {
        match kind {
            TransporterType::TrustReq => TrustReq::validate(value).map(Self::TrustReq),
            TransporterType::TrustRes => TrustRes::validate(value).map(Self::TrustRes),
            TransporterType::BtpsDoc => Invoice::validate(value).map(Self::Invoice),
        }
    }

    /// The first of TrustReq, TrustRes, Invoice that `value` satisfies (the Mutation rule of
    /// PROTOCOL.md §3.10).
    ///
    /// # Errors
    ///
    /// When none matches: the error of the schema the document most looks like.
    pub fn first_match(value: &'a Value) -> Result<Self, SchemaError> {
        let req = TrustReq::validate(value);
        if let Ok(d) = req {
            return Ok(Self::TrustReq(d));
        }
        let res = TrustRes::validate(value);
        if let Ok(d) = res {
            return Ok(Self::TrustRes(d));
        }
        let inv = Invoice::validate(value);
        if let Ok(d) = inv {
            return Ok(Self::Invoice(d));
        }
        let o = value.as_object();
        let has = |k: &str| o.is_some_and(|o| o.contains_key(k));
        let closest = if has("decision") {
            res.err()
        } else if has("totalAmount") || has("lineItems") || has("status") || has("title") {
            inv.err()
        } else {
            req.err()
        };
        Err(SchemaError::new(match closest {
            Some(e) => format!("matches none of TrustReq, TrustRes, Invoice (closest: {e})"),
            None => "matches none of TrustReq, TrustRes, Invoice".to_owned(),
        }))
    }

    /// The transporter type of this document.
    pub fn kind(&self) -> TransporterType {
        match self {
            Self::TrustReq(_) => TransporterType::TrustReq,
            Self::TrustRes(_) => TransporterType::TrustRes,
            Self::Invoice(_) => TransporterType::BtpsDoc,
        }
    }

    /// The document object as received.
    pub fn raw(&self) -> &'a Object {
        match self {
            Self::TrustReq(d) => d.raw,
            Self::TrustRes(d) => d.raw,
            Self::Invoice(d) => d.raw,
        }
    }
}

/// An invoice document (`BTPS_DOC`, PROTOCOL.md §3.7).
#[derive(Clone, Debug, PartialEq)]
pub struct Invoice<'a> {
    /// The document as received.
    pub raw: &'a Object,
    /// `title`.
    pub title: &'a str,
    /// `id` (the invoice number; any string).
    pub id: &'a str,
    /// `issuedAt` (datetime).
    pub issued_at: &'a str,
    /// `status`.
    pub status: InvoiceStatus,
    /// `dueAt` (datetime).
    pub due_at: Option<&'a str>,
    /// `paidAt` (datetime).
    pub paid_at: Option<&'a str>,
    /// `refundedAt` (datetime).
    pub refunded_at: Option<&'a str>,
    /// `disputedAt` (datetime).
    pub disputed_at: Option<&'a str>,
    /// `totalAmount`.
    pub total_amount: Amount<'a>,
    /// `lineItems`.
    pub line_items: LineItems<'a>,
    /// `issuer`.
    pub issuer: Option<Issuer<'a>>,
    /// `paymentLink`.
    pub payment_link: Option<PaymentLink<'a>>,
    /// `description`.
    pub description: Option<&'a str>,
    /// `attachment`.
    pub attachment: Option<Attachment<'a>>,
    /// `template`.
    pub template: Option<Template<'a>>,
}

/// `totalAmount`: `{value: number, currency}` with a currency of PROTOCOL.md Appendix B.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Amount<'a> {
    /// The amount.
    pub value: f64,
    /// One of [`CURRENCY_CODES`](super::CURRENCY_CODES).
    pub currency: &'a str,
}

/// `lineItems`: `{columns: string[], rows: object[]}`; row values are strings or numbers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LineItems<'a> {
    /// The `lineItems` object as received.
    pub raw: &'a Object,
    /// The `columns` items (all strings).
    pub columns: &'a [Value],
    /// The `rows` items (all objects whose values are strings or numbers).
    pub rows: &'a [Value],
}

impl<'a> LineItems<'a> {
    /// The column names (every item, the schema guarantees they are strings).
    pub fn column_names(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.columns.iter().filter_map(Value::as_str)
    }

    /// The rows (every item, the schema guarantees they are objects).
    pub fn row_objects(&self) -> impl Iterator<Item = &'a Object> + 'a {
        self.rows.iter().filter_map(Value::as_object)
    }
}

/// `issuer`: `{name, email?, phone?}`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Issuer<'a> {
    /// The object as received.
    pub raw: &'a Object,
    /// `name`.
    pub name: &'a str,
    /// `email` (email rule).
    pub email: Option<&'a str>,
    /// `phone` (free text).
    pub phone: Option<&'a str>,
}

/// `paymentLink`: `{linkText, url}`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PaymentLink<'a> {
    /// The object as received.
    pub raw: &'a Object,
    /// `linkText`.
    pub link_text: &'a str,
    /// `url` (absolute URL).
    pub url: &'a str,
}

/// `attachment`: `{content: base64, type, filename?}`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Attachment<'a> {
    /// The object as received.
    pub raw: &'a Object,
    /// Base64 of the file.
    pub content: &'a str,
    /// MIME type.
    pub kind: AttachmentType,
    /// `filename`.
    pub filename: Option<&'a str>,
}

/// `template`: `{name, data: object}`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Template<'a> {
    /// The object as received.
    pub raw: &'a Object,
    /// `name`.
    pub name: &'a str,
    /// `data` (any members).
    pub data: &'a Object,
}

impl<'a> Invoice<'a> {
    /// Validates an invoice document.
    ///
    /// # Errors
    ///
    /// [`SchemaError`] with the path inside the document.
    pub fn validate(value: &'a Value) -> Result<Self, SchemaError> {
        let raw = object(value)?;
        let f = Fields(raw);
        Ok(Self {
            raw,
            title: f.req_str("title")?,
            id: f.req_str("id")?,
            issued_at: f.req_datetime("issuedAt")?.0,
            status: f.req("status", enumeration)?,
            due_at: f.opt_datetime("dueAt")?,
            paid_at: f.opt_datetime("paidAt")?,
            refunded_at: f.opt_datetime("refundedAt")?,
            disputed_at: f.opt_datetime("disputedAt")?,
            total_amount: f.req("totalAmount", amount)?,
            line_items: f.req("lineItems", line_items)?,
            issuer: f.opt("issuer", issuer)?,
            payment_link: f.opt("paymentLink", payment_link)?,
            description: f.opt_str("description")?,
            attachment: f.opt("attachment", attachment)?,
            template: f.opt("template", template)?,
        })
    }
}

fn amount(v: &Value) -> Result<Amount<'_>, SchemaError> {
    let f = Fields(object(v)?);
    Ok(Amount {
        value: f.req("value", number)?,
        currency: f.req("currency", |v| {
            let s = string(v)?;
            if is_currency_code(s) {
                Ok(s)
            } else {
                fail(format!(
                    "{} is not an ISO 4217 code in the BTPS list",
                    quote(s)
                ))
            }
        })?,
    })
}

fn line_items(v: &Value) -> Result<LineItems<'_>, SchemaError> {
    let raw = object(v)?;
    let f = Fields(raw);
    let columns = f.req("columns", string_array)?;
    let rows = f.req("rows", |v| {
        let rows = array(v)?;
        for (i, row) in rows.iter().enumerate() {
            let row = object(row).map_err(|e| e.at_index(i))?;
            for (k, cell) in row.iter() {
                if !matches!(cell, Value::String(_) | Value::Number(_)) {
                    let e = SchemaError::new(format!(
                        "a row value must be a string or a number, found {}",
                        cell.type_name()
                    ));
                    return Err(e.at(&k.to_string_lossy()).at_index(i));
                }
            }
        }
        Ok(rows)
    })?;
    Ok(LineItems { raw, columns, rows })
}

fn issuer(v: &Value) -> Result<Issuer<'_>, SchemaError> {
    let raw = object(v)?;
    let f = Fields(raw);
    Ok(Issuer {
        raw,
        name: f.req_str("name")?,
        email: f.opt("email", email)?,
        phone: f.opt_str("phone")?,
    })
}

fn payment_link(v: &Value) -> Result<PaymentLink<'_>, SchemaError> {
    let raw = object(v)?;
    let f = Fields(raw);
    Ok(PaymentLink {
        raw,
        link_text: f.req_str("linkText")?,
        url: f.req("url", url)?,
    })
}

fn attachment(v: &Value) -> Result<Attachment<'_>, SchemaError> {
    let raw = object(v)?;
    let f = Fields(raw);
    Ok(Attachment {
        raw,
        content: f.req("content", base64)?,
        kind: f.req("type", enumeration)?,
        filename: f.opt_str("filename")?,
    })
}

fn template(v: &Value) -> Result<Template<'_>, SchemaError> {
    let raw = object(v)?;
    let f = Fields(raw);
    Ok(Template {
        raw,
        name: f.req_str("name")?,
        data: f.req_object("data")?,
    })
}

/// A trust request document (`TRUST_REQ`, PROTOCOL.md §3.8).
#[derive(Clone, Debug, PartialEq)]
pub struct TrustReq<'a> {
    /// The document as received.
    pub raw: &'a Object,
    /// `id`.
    pub id: &'a str,
    /// `name`.
    pub name: &'a str,
    /// `email` (email rule).
    pub email: &'a str,
    /// `reason`.
    pub reason: &'a str,
    /// `phone` (free text).
    pub phone: &'a str,
    /// `address`.
    pub address: Option<&'a str>,
    /// `displayName`.
    pub display_name: Option<&'a str>,
    /// `message`.
    pub message: Option<&'a str>,
    /// `logoUrl` (absolute URL).
    pub logo_url: Option<&'a str>,
    /// `websiteUrl` (absolute URL).
    pub website_url: Option<&'a str>,
    /// `expiresAt` (datetime): requested trust expiry.
    pub expires_at: Option<&'a str>,
    /// `privacyType`: requested policy.
    pub privacy_type: Option<PrivacyType>,
}

impl<'a> TrustReq<'a> {
    /// Validates a trust request document.
    ///
    /// # Errors
    ///
    /// [`SchemaError`] with the path inside the document.
    pub fn validate(value: &'a Value) -> Result<Self, SchemaError> {
        let raw = object(value)?;
        let f = Fields(raw);
        Ok(Self {
            raw,
            id: f.req_str("id")?,
            name: f.req_str("name")?,
            email: f.req("email", email)?,
            reason: f.req_str("reason")?,
            phone: f.req_str("phone")?,
            address: f.opt_str("address")?,
            display_name: f.opt_str("displayName")?,
            message: f.opt_str("message")?,
            logo_url: f.opt("logoUrl", url)?,
            website_url: f.opt("websiteUrl", url)?,
            expires_at: f.opt_datetime("expiresAt")?,
            privacy_type: f.opt("privacyType", enumeration)?,
        })
    }
}

/// A trust response document (`TRUST_RES`, PROTOCOL.md §3.9).
#[derive(Clone, Debug, PartialEq)]
pub struct TrustRes<'a> {
    /// The document as received.
    pub raw: &'a Object,
    /// `id`: SHOULD equal the answered request document's `id`.
    pub id: &'a str,
    /// `decision`.
    pub decision: TrustDecision,
    /// `decidedAt` (datetime).
    pub decided_at: &'a str,
    /// `decidedBy` (free text).
    pub decided_by: &'a str,
    /// `expiresAt` (datetime): trust expiry.
    pub expires_at: Option<&'a str>,
    /// `retryAfterDate` (datetime): earliest new request.
    pub retry_after_date: Option<&'a str>,
    /// `message`.
    pub message: Option<&'a str>,
    /// `privacyType`: granted policy.
    pub privacy_type: Option<PrivacyType>,
}

impl<'a> TrustRes<'a> {
    /// Validates a trust response document.
    ///
    /// # Errors
    ///
    /// [`SchemaError`] with the path inside the document.
    pub fn validate(value: &'a Value) -> Result<Self, SchemaError> {
        let raw = object(value)?;
        let f = Fields(raw);
        Ok(Self {
            raw,
            id: f.req_str("id")?,
            decision: f.req("decision", enumeration)?,
            decided_at: f.req_datetime("decidedAt")?.0,
            decided_by: f.req_str("decidedBy")?,
            expires_at: f.opt_datetime("expiresAt")?,
            retry_after_date: f.opt_datetime("retryAfterDate")?,
            message: f.opt_str("message")?,
            privacy_type: f.opt("privacyType", enumeration)?,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::json::parse_str;

    pub(crate) const INVOICE: &str = r#"{"title":"Invoice INV-1001","id":"INV-1001","issuedAt":"2025-07-01T09:00:00.000Z","status":"unpaid","dueAt":"2025-07-31T00:00:00.000Z","totalAmount":{"value":1234.5,"currency":"AUD"},"lineItems":{"columns":["Description","Quantity","Unit Price","Amount"],"rows":[{"Description":"Consulting hours","Quantity":10,"Unit Price":100,"Amount":1000},{"Description":"Support plan","Quantity":1,"Unit Price":234.5,"Amount":234.5}]},"issuer":{"name":"VendorCorp Pty Ltd","email":"billing@vendorcorp.test","phone":"+61 2 9000 0000"},"paymentLink":{"linkText":"Pay now","url":"https://pay.vendorcorp.test/inv/INV-1001"},"description":"Services for June 2025"}"#;
    pub(crate) const TRUST_REQ: &str = r#"{"id":"trq-2025-0001","name":"VendorCorp Billing","email":"billing@vendorcorp.test","reason":"To send monthly invoices","phone":"+61 400 000 000","address":"1 Example Street","logoUrl":"https://vendorcorp.test/logo.png","displayName":"VendorCorp","websiteUrl":"https://vendorcorp.test","message":"Please accept","expiresAt":"2026-07-01T00:00:00.000Z","privacyType":"encrypted"}"#;
    pub(crate) const TRUST_RES: &str = r#"{"id":"trs-2025-0001","decision":"accepted","decidedAt":"2025-07-01T10:00:00.000Z","decidedBy":"finance@buyer.test","expiresAt":"2026-07-01T00:00:00.000Z","retryAfterDate":"2026-01-01T00:00Z","message":"Welcome","privacyType":"mixed"}"#;

    pub(crate) fn obj(text: &str) -> Object {
        parse_str(text).unwrap().value.as_object().unwrap().clone()
    }

    /// Validates `text` with `member` set to `value` (or removed when `None`).
    fn with(
        text: &str,
        member: &str,
        value: Option<Value>,
        check: fn(&Value) -> Result<(), SchemaError>,
    ) -> Result<(), SchemaError> {
        let mut o = obj(text);
        let mut target = &mut o;
        let mut parts: Vec<&str> = member.split('/').collect();
        let last = parts.pop().unwrap();
        for p in parts {
            target = target.get_mut(p).unwrap().as_object_mut().unwrap();
        }
        match value {
            Some(v) => {
                target.insert(last, v);
            }
            None => {
                target.remove(last);
            }
        }
        check(&Value::Object(o))
    }

    fn inv(v: &Value) -> Result<(), SchemaError> {
        Invoice::validate(v).map(drop)
    }

    fn treq(v: &Value) -> Result<(), SchemaError> {
        TrustReq::validate(v).map(drop)
    }

    fn tres(v: &Value) -> Result<(), SchemaError> {
        TrustRes::validate(v).map(drop)
    }

    fn first(v: &Value) -> Result<(), SchemaError> {
        BusinessDocument::first_match(v).map(drop)
    }

    fn j(text: &str) -> Value {
        parse_str(text).unwrap().value
    }

    #[test]
    fn invoice_valid() {
        let v = j(INVOICE);
        let inv = Invoice::validate(&v).unwrap();
        assert_eq!(inv.status, InvoiceStatus::Unpaid);
        assert_eq!(
            inv.total_amount,
            Amount {
                value: 1234.5,
                currency: "AUD"
            }
        );
        assert_eq!(
            inv.line_items.column_names().collect::<Vec<_>>()[2],
            "Unit Price"
        );
        assert_eq!(inv.line_items.row_objects().count(), 2);
        assert_eq!(inv.issuer.unwrap().email, Some("billing@vendorcorp.test"));
        assert_eq!(inv.payment_link.unwrap().link_text, "Pay now");
        assert_eq!(inv.due_at, Some("2025-07-31T00:00:00.000Z"));
        // Optional members, unknown members and empty arrays.
        let full = r#"{"title":"t","id":"i","issuedAt":"2025-07-01T09:00Z","status":"paid","paidAt":"2025-07-02T00:00Z","refundedAt":"2025-07-03T00:00Z","disputedAt":"2025-07-04T00:00Z","totalAmount":{"value":-0.5,"currency":"ZWL","extra":1},"lineItems":{"columns":[],"rows":[]},"attachment":{"content":"JVBERi0=","type":"application/pdf","filename":"a.pdf"},"template":{"name":"n","data":{"x":[1,{"y":null}]}},"x-unknown":{"kept":true}}"#;
        let v = j(full);
        let inv = Invoice::validate(&v).unwrap();
        assert_eq!(inv.attachment.unwrap().kind, AttachmentType::Pdf);
        assert!(inv.template.unwrap().data.contains_key("x"));
        assert!(inv.raw.contains_key("x-unknown"));
    }

    #[test]
    fn invoice_required_members() {
        for member in [
            "title",
            "id",
            "issuedAt",
            "status",
            "totalAmount",
            "lineItems",
            "totalAmount/value",
            "totalAmount/currency",
            "lineItems/columns",
            "lineItems/rows",
        ] {
            let e = with(INVOICE, member, None, inv).unwrap_err();
            assert_eq!(e.path(), format!("/{member}"), "{member}");
            assert_eq!(e.reason(), "missing required member");
        }
        for member in [
            "dueAt",
            "issuer",
            "paymentLink",
            "description",
            "issuer/email",
            "issuer/phone",
        ] {
            with(INVOICE, member, None, inv).unwrap();
        }
    }

    #[test]
    fn invoice_rules() {
        let bad: &[(&str, &str, &str)] = &[
            ("status", r#""open""#, "/status"),
            ("status", r#""PAID""#, "/status"),
            ("issuedAt", r#""2025-07-01""#, "/issuedAt"),
            ("dueAt", r#""2025-02-30T00:00Z""#, "/dueAt"),
            ("dueAt", "null", "/dueAt"),
            ("paidAt", r#""2025-07-01T09:00:00+01:00""#, "/paidAt"),
            ("title", "1", "/title"),
            ("description", "null", "/description"),
            (
                "totalAmount",
                r#"{"value":"1","currency":"AUD"}"#,
                "/totalAmount/value",
            ),
            (
                "totalAmount",
                r#"{"value":1,"currency":"aud"}"#,
                "/totalAmount/currency",
            ),
            (
                "totalAmount",
                r#"{"value":1,"currency":"XYZ"}"#,
                "/totalAmount/currency",
            ),
            (
                "lineItems",
                r#"{"columns":["a",1],"rows":[]}"#,
                "/lineItems/columns/1",
            ),
            (
                "lineItems",
                r#"{"columns":[],"rows":[1]}"#,
                "/lineItems/rows/0",
            ),
            (
                "lineItems",
                r#"{"columns":[],"rows":[{"a":1},{"b":true}]}"#,
                "/lineItems/rows/1/b",
            ),
            (
                "lineItems",
                r#"{"columns":[],"rows":[{"a":null}]}"#,
                "/lineItems/rows/0/a",
            ),
            (
                "lineItems",
                r#"{"columns":[],"rows":[{"a":[1]}]}"#,
                "/lineItems/rows/0/a",
            ),
            (
                "lineItems",
                r#"{"columns":"a","rows":[]}"#,
                "/lineItems/columns",
            ),
            ("issuer", r#"{"email":"a@b.co"}"#, "/issuer/name"),
            (
                "issuer",
                r#"{"name":"n","email":"not-an-email"}"#,
                "/issuer/email",
            ),
            ("issuer", "null", "/issuer"),
            (
                "paymentLink",
                r#"{"linkText":"x","url":"pay.example.com"}"#,
                "/paymentLink/url",
            ),
            (
                "paymentLink",
                r#"{"url":"https://x.example"}"#,
                "/paymentLink/linkText",
            ),
            (
                "attachment",
                r#"{"content":"not base64!","type":"application/pdf"}"#,
                "/attachment/content",
            ),
            (
                "attachment",
                r#"{"content":"QUJD","type":"text/plain"}"#,
                "/attachment/type",
            ),
            (
                "attachment",
                r#"{"type":"image/png"}"#,
                "/attachment/content",
            ),
            (
                "attachment",
                r#"{"content":"QUJD","type":"image/png","filename":null}"#,
                "/attachment/filename",
            ),
            ("template", r#"{"name":"n","data":[]}"#, "/template/data"),
            ("template", r#"{"data":{}}"#, "/template/name"),
        ];
        for (member, value, path) in bad {
            let e = with(INVOICE, member, Some(j(value)), inv).unwrap_err();
            assert_eq!(e.path(), *path, "{member} = {value}: {e}");
        }
        let e = with(
            INVOICE,
            "totalAmount",
            Some(j(r#"{"value":1,"currency":"XYZ"}"#)),
            inv,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"/totalAmount/currency: "XYZ" is not an ISO 4217 code in the BTPS list"#
        );
        assert_eq!(
            Invoice::validate(&j("[]")).unwrap_err().to_string(),
            "expected an object, found array"
        );
        for ok in [
            (
                "lineItems",
                r#"{"columns":["a"],"rows":[{"z":"s","1":2.5,"x":-1e300}]}"#,
            ),
            ("attachment", r#"{"content":"","type":"image/jpeg"}"#),
            ("issuer", r#"{"name":"n"}"#),
            ("paymentLink", r#"{"linkText":"x","url":"ftp://x"}"#),
        ] {
            with(INVOICE, ok.0, Some(j(ok.1)), inv).unwrap();
        }
    }

    #[test]
    fn trust_req() {
        let v = j(TRUST_REQ);
        let d = TrustReq::validate(&v).unwrap();
        assert_eq!(d.privacy_type, Some(PrivacyType::Encrypted));
        assert_eq!(d.website_url, Some("https://vendorcorp.test"));
        for member in ["id", "name", "email", "reason", "phone"] {
            let e = with(TRUST_REQ, member, None, treq).unwrap_err();
            assert_eq!(e.path(), format!("/{member}"));
        }
        for member in [
            "address",
            "displayName",
            "message",
            "logoUrl",
            "websiteUrl",
            "expiresAt",
            "privacyType",
        ] {
            with(TRUST_REQ, member, None, treq).unwrap();
            let e = with(TRUST_REQ, member, Some(Value::Null), treq).unwrap_err();
            assert_eq!(e.path(), format!("/{member}"));
        }
        for (member, value) in [
            ("email", r#""billing.vendorcorp.test""#),
            ("logoUrl", r#""vendorcorp.test/logo.png""#),
            ("websiteUrl", r#""//vendorcorp.test""#),
            ("expiresAt", r#""2026-07-01T24:00:00Z""#),
            ("privacyType", r#""private""#),
            ("phone", "12345"),
        ] {
            let e = with(TRUST_REQ, member, Some(j(value)), treq).unwrap_err();
            assert_eq!(e.path(), format!("/{member}"), "{member}");
        }
    }

    #[test]
    fn trust_res() {
        let v = j(TRUST_RES);
        let d = TrustRes::validate(&v).unwrap();
        assert_eq!(d.decision, TrustDecision::Accepted);
        assert_eq!(d.privacy_type, Some(PrivacyType::Mixed));
        for member in ["id", "decision", "decidedAt", "decidedBy"] {
            let e = with(TRUST_RES, member, None, tres).unwrap_err();
            assert_eq!(e.path(), format!("/{member}"));
        }
        for member in ["expiresAt", "retryAfterDate", "message", "privacyType"] {
            with(TRUST_RES, member, None, tres).unwrap();
        }
        for (member, value) in [
            ("decision", r#""pending""#),
            ("decidedAt", r#""yesterday""#),
            ("retryAfterDate", r#""2026-01-01T00:00:00.000+00:00""#),
        ] {
            let e = with(TRUST_RES, member, Some(j(value)), tres).unwrap_err();
            assert_eq!(e.path(), format!("/{member}"), "{member}");
        }
    }

    #[test]
    fn business_documents() {
        let (req, res, inv) = (j(TRUST_REQ), j(TRUST_RES), j(INVOICE));
        assert_eq!(
            BusinessDocument::first_match(&req).unwrap().kind(),
            TransporterType::TrustReq
        );
        assert_eq!(
            BusinessDocument::first_match(&res).unwrap().kind(),
            TransporterType::TrustRes
        );
        assert_eq!(
            BusinessDocument::first_match(&inv).unwrap().kind(),
            TransporterType::BtpsDoc
        );
        // First match wins: a value that is both a TrustReq and an invoice is a TrustReq.
        let mut both = obj(INVOICE);
        for (k, v) in obj(TRUST_REQ).iter() {
            if !both.contains_key(&k.to_string()) {
                both.insert(k.clone(), v.clone());
            }
        }
        let both = Value::Object(both);
        assert_eq!(
            BusinessDocument::first_match(&both).unwrap().kind(),
            TransporterType::TrustReq
        );
        let e = with(INVOICE, "status", Some(j(r#""open""#)), first).unwrap_err();
        assert!(e.reason().contains("closest: /status"), "{e}");
        let e = BusinessDocument::first_match(&j("{}")).unwrap_err();
        assert!(e.reason().contains("closest: /id"), "{e}");
        assert!(BusinessDocument::validate(TransporterType::TrustRes, &req).is_err());
        assert_eq!(
            BusinessDocument::validate(TransporterType::BtpsDoc, &inv)
                .unwrap()
                .raw()
                .len(),
            10
        );
        assert_eq!(
            TransporterType::from_wire("BTPS_DOC"),
            Some(TransporterType::BtpsDoc)
        );
        assert_eq!(TransporterType::from_wire("btps_doc"), None);
        assert_eq!(TransporterType::TrustReq.to_string(), "TRUST_REQ");
    }
}
