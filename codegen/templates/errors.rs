{%- for e in errors %}
{%- for d in e.docs %}{{ d }}{% endfor %}
#[derive(::core::fmt::Debug, ::core::clone::Clone, ::core::cmp::PartialEq)]
pub enum {{ e.name }} {
{%- for v in e.variants %}
    {%- for d in v.docs %}{{ d }}{% endfor %}
    {%- if v.fields.is_empty() %}
    {{ v.name }},
    {%- else %}
    {{ v.name }} {
    {%- for f in v.fields %}
        {%- for d in f.docs %}{{ d }}{% endfor %}
        {{ f.name }}: {{ f.ty }},
    {%- endfor %}
    },
    {%- endif %}
{%- endfor %}
    /// A failure that is not one of the declared errors (`internal`, `bad_request`, ...).
    Internal({{ rt }}::ServiceError),
}

impl {{ rt }}::codegen::MethodError for {{ e.name }} {
    fn into_service_error(self) -> {{ rt }}::ServiceError {
        match self {
{%- for v in e.variants %}
    {%- if v.fields.is_empty() %}
            Self::{{ v.name }} => {{ rt }}::codegen::declared_error_without_details({{ v.wire }}, {{ v.message }}),
    {%- else %}
            Self::{{ v.name }} { {% for f in v.fields %}{{ f.name }},{% endfor %} } => {{ rt }}::codegen::declared_error(
                {{ v.wire }},
                {{ v.message }},
                &{{ private }}::{{ v.details }} { {% for f in v.fields %}{{ f.name }},{% endfor %} },
            ),
    {%- endif %}
{%- endfor %}
            Self::Internal(error) => error,
        }
    }

    fn from_service_error(error: {{ rt }}::ServiceError) -> Self {
        match error.kind() {
{%- for v in e.variants %}
    {%- if v.fields.is_empty() %}
            {{ v.wire }} => Self::{{ v.name }},
    {%- else %}
            {{ v.wire }} => match {{ rt }}::codegen::decode_details::<{{ private }}::{{ v.details }}>(&error) {
                ::core::result::Result::Ok(details) => Self::{{ v.name }} { {% for f in v.fields %}{{ f.name }}: details.{{ f.name }},{% endfor %} },
                ::core::result::Result::Err(_) => Self::Internal(error),
            },
    {%- endif %}
{%- endfor %}
            _ => Self::Internal(error),
        }
    }
}

impl ::core::fmt::Display for {{ e.name }} {
    fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
        match self {
{%- for v in e.variants %}
            Self::{{ v.name }} { .. } => f.write_str({{ v.message }}),
{%- endfor %}
            Self::Internal(error) => ::core::fmt::Display::fmt(error, f),
        }
    }
}

impl ::core::convert::From<{{ rt }}::ServiceError> for {{ e.name }} {
    fn from(error: {{ rt }}::ServiceError) -> Self {
        Self::Internal(error)
    }
}
{% endfor %}
