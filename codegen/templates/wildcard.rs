{%- for d in w.docs %}{{ d }}{% endfor %}
#[derive(::core::fmt::Debug, ::core::clone::Clone, ::core::cmp::PartialEq)]
pub enum {{ w.name }} {
{%- for v in w.variants %}
    #[doc = {{ v.doc }}]
    {{ v.name }}({{ v.ty }}),
{%- endfor %}
}

impl {{ w.name }} {
    /// The topic this event was published on.
    pub const fn topic(&self) -> &'static str {
        match self {
{%- for v in w.variants %}
            Self::{{ v.name }}(_) => {{ v.topic }},
{%- endfor %}
        }
    }

    #[doc(hidden)]
    pub fn decode(
        subject: &str,
        payload: &[u8],
    ) -> ::core::result::Result<Self, {{ rt }}::ServiceError> {
        match subject {
{%- for v in w.variants %}
            {{ v.topic }} => ::core::result::Result::Ok(Self::{{ v.name }}({{ rt }}::codegen::decode_event(payload)?)),
{%- endfor %}
            other => ::core::result::Result::Err({{ rt }}::codegen::unknown_topic(other)),
        }
    }
}
