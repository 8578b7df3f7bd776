{{ e.head }}#[serde(crate = "__rt::serde")]
pub enum {{ e.name }} {
{%- for v in e.variants %}
    {{ v.doc }}
    #[serde(rename = {{ v.wire }})]
    {{ v.name }},
{%- endfor %}
}

#[allow(dead_code, clippy::doc_markdown, clippy::option_option, clippy::zero_sized_map_values)]
impl {{ e.name }} {
    /// Every value, in declaration order.
    pub const ALL: &'static [Self] = &[{% for v in e.variants %}{% if !loop.first %}, {% endif %}Self::{{ v.name }}{% endfor %}];

    /// The value as it is written on the wire.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
{%- for v in e.variants %}
            Self::{{ v.name }} => {{ v.wire }},
{%- endfor %}
        }
    }
}

/// The value as it is written on the wire.
impl __rt::fmt::Display for {{ e.name }} {
    fn fmt(&self, f: &mut __rt::fmt::Formatter<'_>) -> __rt::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses the value as it is written on the wire.
impl __rt::FromStr for {{ e.name }} {
    type Err = __rt::ParseEnumError;

    fn from_str(value: &str) -> __rt::Result<Self, __rt::ParseEnumError> {
        match value {
{%- for v in e.variants %}
            {{ v.wire }} => __rt::Result::Ok(Self::{{ v.name }}),
{%- endfor %}
            _ => __rt::Result::Err(__rt::ParseEnumError::new({{ e.wire_name }}, value, &[{% for v in e.variants %}{% if !loop.first %}, {% endif %}{{ v.wire }}{% endfor %}])),
        }
    }
}
