{%- for m in modules %}

{{ m.docs.at("") }}pub mod {{ m.module }} {
    use super::__rt;
{%- for e in m.errors %}

{{ e.docs.at("    ") }}    #[allow(dead_code, clippy::doc_markdown, clippy::option_option, clippy::zero_sized_map_values)]
    #[derive(__rt::Debug, __rt::Clone, __rt::PartialEq)]
    pub enum {{ e.name }} {
{%- for v in e.variants %}
{{ v.docs.at("        ") }}        {{ v.name }}{% if !v.fields.is_empty() %} {
    {%- for f in v.fields %}
{{ f.docs.at("            ") }}            {{ f.name }}: {{ f.ty }},
    {%- endfor %}
        }{% endif %},
{%- endfor %}
        /// A failure that is not one of the declared errors (`internal`, `bad_request`, ...).
        Internal(__rt::ServiceError),
    }

    impl __rt::MethodError for {{ e.name }} {
        fn into_service_error(self) -> __rt::ServiceError {
            match self {
{%- for v in e.variants %}
    {%- if v.fields.is_empty() %}
                Self::{{ v.name }} => __rt::declared_error_without_details({{ v.wire }}, {{ v.message }}),
    {%- else %}
                Self::{{ v.name }} { {% for f in v.fields %}{% if !loop.first %}, {% endif %}{{ f.name }}{% endfor %} } => __rt::declared_error(
                    {{ v.wire }},
                    {{ v.message }},
                    &{{ private }}::{{ v.details }} { {% for f in v.fields %}{% if !loop.first %}, {% endif %}{{ f.name }}{% endfor %} },
                ),
    {%- endif %}
{%- endfor %}
                Self::Internal(error) => error,
            }
        }

        fn from_service_error(error: __rt::ServiceError) -> Self {
            match error.kind() {
{%- for v in e.variants %}
    {%- if v.fields.is_empty() %}
                {{ v.wire }} => Self::{{ v.name }},
    {%- else %}
                {{ v.wire }} => match __rt::decode_details::<{{ private }}::{{ v.details }}>(&error) {
                    __rt::Result::Ok(d) => Self::{{ v.name }} { {% for f in v.fields %}{% if !loop.first %}, {% endif %}{{ f.name }}: d.{{ f.name }}{% endfor %} },
                    __rt::Result::Err(_) => Self::Internal(error),
                },
    {%- endif %}
{%- endfor %}
                _ => Self::Internal(error),
            }
        }
    }

    /// The declared error's name and description, then its fields.
    impl __rt::fmt::Display for {{ e.name }} {
        fn fmt(&self, f: &mut __rt::fmt::Formatter<'_>) -> __rt::fmt::Result {
            match self {
{%- for v in e.variants %}
    {%- if v.fields.is_empty() %}
                Self::{{ v.name }} => f.write_str({{ v.display }}),
    {%- else %}
                Self::{{ v.name }} { {% for f in v.fields %}{% if !loop.first %}, {% endif %}{{ f.name }}: value_{{ loop.index0 }}{% endfor %} } => {
                    f.write_str({{ v.display }})?;
        {%- for f in v.fields %}
                    f.write_str({{ f.display_label }})?;
                    __rt::Debug::fmt(value_{{ loop.index0 }}, f)?;
        {%- endfor %}
                    f.write_str(")")
                }
    {%- endif %}
{%- endfor %}
                Self::Internal(error) => __rt::fmt::Display::fmt(error, f),
            }
        }
    }

    __rt::method_error!({{ e.name }});
{%- endfor %}
}
{%- for a in m.aliases %}

#[allow(unused_imports)]
pub use self::{{ m.module }}::{{ a }};
{%- endfor %}
{%- endfor %}
