#!/usr/bin/env bash
# Probe which Elasticsearch features a node supports; one OK/FAIL line per feature.
#   deploy/local/es-probe.sh [http://127.0.0.1:9200]
# Creates and deletes its own indices/templates (probe-*, probe-tpl, dsx-tpl).
# Used to measure what the Maven Central integ-test-zip distribution lacks
# (see deploy/local/README.md); run it against the docker image to compare.
set -uo pipefail
E=${1:-http://127.0.0.1:${NEWSWATCH_LOCAL_ES_PORT:-9200}}
OUT=$(mktemp); trap 'rm -f "$OUT"' EXIT
req(){ # req METHOD PATH [BODY] -> prints "HTTPCODE BODY"
  local m=$1 p=$2 b=${3:-}
  if [[ $m == HEAD ]]; then curl -sS -I -o "$OUT" -w '%{http_code}' --max-time 10 "$E$p"
  elif [[ -n $b ]]; then curl -sS -o "$OUT" -w '%{http_code}' -X "$m" "$E$p" -H 'Content-Type: application/json' --data-binary "$b"
  else curl -sS -o "$OUT" -w '%{http_code}' -X "$m" "$E$p"; fi
}
chk(){ # chk NAME METHOD PATH [BODY]
  local name=$1; shift
  local code; code=$(req "$@")
  local body; body=$(head -c 220 "$OUT" | tr '\n' ' ')
  if [[ $code == 2* ]] && ! grep -q '"errors":true' "$OUT"; then printf 'OK    %-45s %s\n' "$name" "$code"
  else printf 'FAIL  %-45s %s %s\n' "$name" "$code" "$body"; fi
}
req DELETE '/probe*' >/dev/null; req DELETE '/_index_template/probe-tpl' >/dev/null
chk 'GET / (client.info())' GET /
chk 'HEAD / (client.ping())' HEAD /
chk 'cluster health' GET '/_cluster/health'
chk 'index template: standard analyzer+stopwords, keyword, dynamic:false, alias' PUT /_index_template/probe-tpl '{
 "index_patterns":["probe-*"],
 "template":{
  "settings":{"number_of_shards":1,"number_of_replicas":0,
   "analysis":{"analyzer":{"std_en":{"type":"standard","stopwords":"_english_"}}}},
  "mappings":{"dynamic":false,"properties":{
    "title":{"type":"text","analyzer":"std_en","fields":{"raw":{"type":"keyword","ignore_above":512}}},
    "body":{"type":"text","analyzer":"std_en"},
    "feed":{"type":"keyword"},"tags":{"type":"keyword"},
    "published":{"type":"date"},"score":{"type":"float"},"url":{"type":"keyword","index":false}}},
  "aliases":{"probe":{}}}}'
chk 'create index from template' PUT /probe-000001
chk 'bulk index + refresh' POST '/probe/_bulk?refresh=true' '{"index":{"_id":"1"}}
{"title":"Foreign fighters return home","body":"The fighters were returning to the country","feed":"bbc","tags":["security","europe"],"published":"2026-11-01T10:00:00Z","score":1.5,"unmapped_field":"x"}
{"index":{"_id":"2"}}
{"title":"Markets rally","body":"Stocks rose on Tuesday","feed":"reuters","tags":["markets"],"published":"2026-11-02T10:00:00Z","score":0.5}
'
chk 'match query through alias' POST /probe/_search '{"query":{"match":{"body":"the fighters"}}}'
printf '      -> hits: %s\n' "$(grep -o '"total":{"value":[0-9]*' "$OUT")"
chk 'match_phrase + bool + filter + highlight' POST /probe/_search '{"query":{"bool":{"must":[{"match_phrase":{"title":"foreign fighters"}}],"filter":[{"term":{"feed":"bbc"}},{"range":{"published":{"gte":"2026-10-01"}}}]}},"highlight":{"fields":{"title":{}}}}'
printf '      -> hits: %s\n' "$(grep -o '"total":{"value":[0-9]*' "$OUT")"
chk 'multi_match / query_string / simple_query_string' POST /probe/_search '{"query":{"bool":{"should":[{"multi_match":{"query":"fighters","fields":["title^2","body"]}},{"query_string":{"query":"title:markets"}},{"simple_query_string":{"query":"rally"}}]}}}'
chk 'dynamic:false keeps unmapped field out of mapping' GET /probe-000001/_mapping
grep -q unmapped_field "$OUT" && echo '      -> unmapped_field WAS mapped' || echo '      -> unmapped_field not mapped (ok)'
chk 'aggs: terms, date_histogram, avg, cardinality, composite' POST '/probe/_search?size=0' '{"aggs":{"t":{"terms":{"field":"tags"}},"d":{"date_histogram":{"field":"published","calendar_interval":"day"}},"a":{"avg":{"field":"score"}},"c":{"cardinality":{"field":"feed"}},"comp":{"composite":{"sources":[{"f":{"terms":{"field":"feed"}}}]}}}}'
chk 'aggs: filters, significant_terms, top_hits' POST '/probe/_search?size=0' '{"aggs":{"f":{"filters":{"filters":{"b":{"term":{"feed":"bbc"}}}}},"s":{"significant_terms":{"field":"tags"}},"th":{"terms":{"field":"feed"},"aggs":{"top":{"top_hits":{"size":1}}}}}}'
chk 'pipeline aggs: bucket_sort/bucket_selector (aggregations module)' POST '/probe/_search?size=0' '{"aggs":{"t":{"terms":{"field":"feed"},"aggs":{"s":{"bucket_sort":{"size":1}}}}}}'
chk 'auto_date_histogram (aggregations module)' POST '/probe/_search?size=0' '{"aggs":{"d":{"auto_date_histogram":{"field":"published"}}}}'
chk 'count' GET '/probe/_count'
chk 'update (partial doc)' POST '/probe-000001/_update/2?refresh=true' '{"doc":{"score":2.0}}'
chk 'point in time (PIT) open' POST '/probe/_pit?keep_alive=1m'
chk 'collapse on keyword' POST /probe/_search '{"collapse":{"field":"feed"},"query":{"match_all":{}}}'
chk 'more_like_this' POST /probe/_search '{"query":{"more_like_this":{"fields":["body"],"like":"fighters returning country","min_term_freq":1,"min_doc_freq":1}}}'
chk 'msearch' POST /_msearch $'{"index":"probe"}\n{"query":{"match_all":{}}}\n'
chk 'alias actions (_aliases swap)' POST /_aliases '{"actions":[{"add":{"index":"probe-000001","alias":"probe-read"}}]}'
chk 'rollover via alias (is_write_index)' POST /_aliases '{"actions":[{"add":{"index":"probe-000001","alias":"probe-w","is_write_index":true}}]}'
chk 'rollover API' POST '/probe-w/_rollover' '{"conditions":{"max_docs":1}}'
chk 'analyze: standard analyzer with stopwords' POST /_analyze '{"analyzer":"standard","text":"The Fighters"}'
chk 'analyze: english analyzer (analysis-common)' POST /_analyze '{"analyzer":"english","text":"The fighters were returning"}'
chk 'analyze: whitespace analyzer' POST /_analyze '{"analyzer":"whitespace","text":"a b"}'
chk 'analyze: simple analyzer' POST /_analyze '{"analyzer":"simple","text":"a b"}'
chk 'analyze: stop token filter' POST /_analyze '{"tokenizer":"standard","filter":["stop"],"text":"the a b"}'
chk 'analyze: shingle token filter' POST /_analyze '{"tokenizer":"standard","filter":["shingle"],"text":"a b c"}'
chk 'analyze: edge_ngram tokenizer (analysis-common)' POST /_analyze '{"tokenizer":"edge_ngram","text":"abc"}'
chk 'analyze: whitespace tokenizer (analysis-common)' POST /_analyze '{"tokenizer":"whitespace","text":"a b"}'
chk 'custom analyzer + keyword normalizer (lowercase, stop)' PUT /probe-norm '{"settings":{"analysis":{"normalizer":{"lc":{"type":"custom","filter":["lowercase"]}},"analyzer":{"c":{"type":"custom","tokenizer":"standard","filter":["lowercase","stop"]}}}},"mappings":{"properties":{"k":{"type":"keyword","normalizer":"lc"},"t":{"type":"text","analyzer":"c"}}}}'
chk 'analyze: stop analyzer' POST /_analyze '{"analyzer":"stop","text":"the a b"}'
chk 'analyze: lowercase token filter' POST /_analyze '{"tokenizer":"standard","filter":["lowercase"],"text":"AbC"}'
chk 'analyze: asciifolding token filter (analysis-common)' POST /_analyze '{"tokenizer":"standard","filter":["asciifolding"],"text":"Café"}'
chk 'analyze: stemmer/porter_stem (analysis-common)' POST /_analyze '{"tokenizer":"standard","filter":["porter_stem"],"text":"returning"}'
chk 'analyze: synonym filter (analysis-common)' POST /_analyze '{"tokenizer":"standard","filter":[{"type":"synonym","synonyms":["isis, isil"]}],"text":"isis"}'
chk 'analyze: html_strip char filter (analysis-common)' POST /_analyze '{"tokenizer":"standard","char_filter":["html_strip"],"text":"<b>x</b>"}'
chk 'analyze: icu / language analyzers (french)' POST /_analyze '{"analyzer":"french","text":"les combattants"}'
chk 'mapping: match_only_text / search_as_you_type (mapper-extras)' PUT /probe-mx '{"mappings":{"properties":{"a":{"type":"match_only_text"},"b":{"type":"search_as_you_type"}}}}'
chk 'mapping: scaled_float / rank_feature (mapper-extras)' PUT /probe-mx2 '{"mappings":{"properties":{"a":{"type":"scaled_float","scaling_factor":10},"b":{"type":"rank_feature"}}}}'
chk 'mapping: wildcard field (x-pack wildcard)' PUT /probe-wc '{"mappings":{"properties":{"a":{"type":"wildcard"}}}}'
chk 'mapping: flattened' PUT /probe-fl '{"mappings":{"properties":{"a":{"type":"flattened"}}}}'
chk 'mapping: completion suggester' PUT /probe-cs '{"mappings":{"properties":{"a":{"type":"completion"}}}}'
chk 'mapping: dense_vector' PUT /probe-dv '{"mappings":{"properties":{"v":{"type":"dense_vector","dims":3}}}}'
chk 'mapping: percolator (percolator module)' PUT /probe-perc '{"mappings":{"properties":{"q":{"type":"percolator"},"body":{"type":"text"}}}}'
chk 'mapping: join (parent-join)' PUT /probe-join '{"mappings":{"properties":{"j":{"type":"join","relations":{"a":"b"}}}}}'
chk 'painless: script_score query' POST /probe/_search '{"query":{"script_score":{"query":{"match_all":{}},"script":{"source":"doc[\"score\"].value * 2"}}}}'
chk 'painless execute API' POST /_scripts/painless/_execute '{"script":{"source":"1+1"}}'
chk 'scripted update (painless)' POST '/probe-000001/_update/1' '{"script":{"source":"ctx._source.score += 1"}}'
chk 'runtime field with script' POST /probe/_search '{"runtime_mappings":{"x":{"type":"long","script":{"source":"emit(1)"}}},"fields":["x"]}'
chk 'expression scripts (lang-expression)' POST /probe/_search '{"query":{"script_score":{"query":{"match_all":{}},"script":{"lang":"expression","source":"_score * 2"}}}}'
chk 'search template (lang-mustache)' POST /probe/_search/template '{"source":{"query":{"match":{"body":"{{q}}"}}},"params":{"q":"fighters"}}'
chk 'ingest pipeline (ingest-common)' PUT /_ingest/pipeline/probe-p '{"processors":[{"set":{"field":"x","value":"y"}}]}'
chk 'update_by_query (reindex module)' POST '/probe/_update_by_query?conflicts=proceed'
chk 'delete_by_query (reindex module)' POST '/probe/_delete_by_query' '{"query":{"term":{"feed":"nonexistent"}}}'
chk 'reindex (reindex module)' POST /_reindex '{"source":{"index":"probe-000001"},"dest":{"index":"probe-copy"}}'
chk 'ILM policy (x-pack-ilm)' PUT /_ilm/policy/probe-ilm '{"policy":{"phases":{"hot":{"actions":{}}}}}'
chk 'data stream template (accepted even without the module)' PUT /_index_template/dsx-tpl '{"index_patterns":["dsx-*"],"data_stream":{},"template":{"settings":{"number_of_replicas":0}}}'
chk 'data stream create (data-streams module)' PUT /_data_stream/dsx-probe
chk 'rank_eval (rank-eval module)' POST /probe/_rank_eval '{"requests":[{"id":"q","request":{"query":{"match_all":{}}},"ratings":[]}],"metric":{"precision":{"k":1}}}'
chk 'SQL (x-pack-sql)' POST '/_sql?format=txt' '{"query":"SELECT 1"}'
chk 'ES|QL (x-pack-esql)' POST /_query '{"query":"ROW a=1"}'
chk 'snapshot API' GET /_snapshot
chk 'health report' GET /_health_report
chk 'cat indices' GET '/_cat/indices?v'
chk 'license' GET /_license
chk 'xpack info' GET /_xpack
req DELETE '/probe*' >/dev/null; req DELETE '/_index_template/probe-tpl' >/dev/null; req DELETE '/_data_stream/dsx-probe' >/dev/null; req DELETE '/_index_template/dsx-tpl' >/dev/null
