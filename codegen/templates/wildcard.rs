{{ w.docs.at("") }}#[allow(dead_code, clippy::doc_markdown, clippy::option_option, clippy::zero_sized_map_values)]
#[derive(__rt::Debug, __rt::Clone, __rt::PartialEq)]
pub enum {{ w.name }} {
{%- for v in w.variants %}
    {{ v.doc }}
    {{ v.name }}({{ v.ty }}),
{%- endfor %}
}

#[allow(dead_code, clippy::doc_markdown, clippy::option_option, clippy::zero_sized_map_values)]
impl {{ w.name }} {
    /// The topic this event was published on.
    #[must_use]
    pub const fn topic(&self) -> &'static str {
        match self {
{%- for v in w.variants %}
            Self::{{ v.name }}(_) => {{ v.topic }},
{%- endfor %}
        }
    }

    #[doc(hidden)]
    pub fn decode(subject: &str, payload: &[u8]) -> __rt::Result<Self, __rt::ServiceError> {
        match subject {
{%- for v in w.variants %}
            {{ v.topic }} => __rt::Result::Ok(Self::{{ v.name }}(__rt::decode_event(payload)?)),
{%- endfor %}
            other => __rt::Result::Err(__rt::unknown_topic(other)),
        }
    }
}
