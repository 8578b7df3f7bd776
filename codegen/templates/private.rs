#[doc(hidden)]
#[allow(dead_code, clippy::option_option, clippy::zero_sized_map_values)]
mod {{ private }} {
{%- if !structs.is_empty() || !descriptors.is_empty() || has_events %}
    use super::__rt;
{%- endif %}
{%- for s in structs %}

{{ s.head }}    #[serde(crate = "__rt::serde")]
{%- if s.fields.is_empty() %}
    pub(super) struct {{ s.name }} {}
{%- else %}
    pub(super) struct {{ s.name }} {
{%- for f in s.fields %}
{{ f.head.at("        ") }}        pub {{ f.name }}: {{ f.ty }},
{%- endfor %}
    }
{%- endif %}
{%- endfor %}
{%- for schema in schemas %}
{%- if loop.first %}
{% endif %}
    const SCHEMA_{{ loop.index0 }}: &str = {{ schema }};
{%- endfor %}
{%- if !descriptors.is_empty() %}

    /// What an endpoint is unless it says otherwise.
    const ENDPOINT: __rt::EndpointDescriptor = __rt::EndpointDescriptor {
{%- for f in endpoint_base %}
        {{ f }}
{%- endfor %}
    };
{%- endif %}
{%- for d in descriptors %}

    pub(super) static {{ d.name }}: __rt::ServiceDescriptor = __rt::ServiceDescriptor {
        name: {{ d.service }},
        package: {{ d.package }},
        version: {{ d.version }},
        description: {{ d.description }},
        topics: &[{% for t in topics %}{% if !loop.first %}, {% endif %}{{ t }}{% endfor %}],
        endpoints: &[
{%- for e in d.endpoints %}
            __rt::EndpointDescriptor {
{%- for f in e.fields %}
                {{ f }}
{%- endfor %}
                ..ENDPOINT
            },
{%- endfor %}
        ],
    };
{%- endfor %}
{%- if has_events %}

    pub(super) static EVENTS: __rt::EventsDescriptor = __rt::EventsDescriptor {
        package: {{ package }},
        topics: &[{% for t in topics %}{% if !loop.first %}, {% endif %}{{ t }}{% endfor %}],
    };
{%- endif %}
}
