{{ e.head }}#[serde(crate = "__rt::serde")]
pub enum {{ e.name }} {
{%- for v in e.variants %}
    #[serde(rename = {{ v.wire }})]
    {{ v.name }},
{%- endfor %}
}

impl {{ e.name }} {
    /// Every value, in declaration order.
    pub const ALL: &'static [Self] = &[{% for v in e.variants %}{% if !loop.first %}, {% endif %}Self::{{ v.name }}{% endfor %}];

    /// The value as it is written on the wire.
    pub const fn as_str(&self) -> &'static str {
        match self {
{%- for v in e.variants %}
            Self::{{ v.name }} => {{ v.wire }},
{%- endfor %}
        }
    }
}

impl __rt::fmt::Display for {{ e.name }} {
    fn fmt(&self, f: &mut __rt::fmt::Formatter<'_>) -> __rt::fmt::Result {
        f.write_str(self.as_str())
    }
}
