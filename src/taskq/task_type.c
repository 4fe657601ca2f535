/* task_type.c — task type aliases (see task_type.h; p2p_tasks_spec.md §10.3). */
#include "taskq/task_type.h"

#include <ctype.h>
#include <string.h>

static const char *const type_families[][12] = {
    {"text-generation", "text_generation", "generation", NULL},
    {"text2text-generation", "text2text_generation", "text2text", NULL},
    {"embedding", "embeddings", "text-embedding", "text_embedding", "text_embeddings", NULL},
    {"text-classification", "text_classification", NULL},
    {"hf.pipeline", "hf_pipeline", NULL},
    {"llm.generate", "llm_generate", NULL},
    {"multimodal-generation", "multimodal_generation", "vision-generation", "vision_generation", NULL},
    {"tool.call", "tool", NULL},
    {"voice.tts", "voice_tts", "voice-tts", "tts", "text-to-speech", "text_to_speech", NULL},
    {"voice.asr", "voice_asr", "voice-asr", "voice.stt", "voice_stt", "voice-stt", "asr", "stt",
     "speech-to-text", "speech_to_text", "automatic-speech-recognition", NULL},
    {"voice.audio-validate", "voice.audio_validate", "voice_audio_validate", "voice-audio-validate",
     "audio-validate", "audio_validate", "audio-validation", "audio_validation", NULL},
};
#define N_FAMILIES (sizeof type_families / sizeof type_families[0])

static int type_family(const char *t) {
  for (size_t f = 0; f < N_FAMILIES; f++)
    for (size_t i = 0; type_families[f][i]; i++)
      if (strcmp(type_families[f][i], t) == 0) return (int)f;
  /* "automatic_speech_recognition" does not fit the fixed row width; check it here. */
  if (strcmp(t, "automatic_speech_recognition") == 0) return 9;
  return -1;
}

const char *taskq_task_type_canonical(const char *t) {
  int f = t ? type_family(t) : -1;
  return f >= 0 ? type_families[f][0] : t;
}

static void types_add_unique(json_t *out, const char *s) {
  size_t i;
  json_t *v;
  if (json_array_size(out) >= TASKQ_MAX_TYPES * 12) return;
  json_array_foreach(out, i, v) if (strcmp(json_string_value(v), s) == 0) return;
  json_array_append_new(out, json_string(s));
}

static void types_add_one(json_t *out, const char *s, size_t n, bool expand) {
  char w[128];
  while (n && isspace((unsigned char)*s)) s++, n--;
  while (n && isspace((unsigned char)s[n - 1])) n--;
  if (n == 0 || n >= sizeof w) return;
  for (size_t i = 0; i < n; i++) w[i] = (char)tolower((unsigned char)s[i]);
  w[n] = 0;
  int f = expand ? type_family(w) : -1;
  if (f < 0) {
    types_add_unique(out, w);
    return;
  }
  for (size_t i = 0; type_families[f][i]; i++) types_add_unique(out, type_families[f][i]);
  if (f == 9) types_add_unique(out, "automatic_speech_recognition");
}

json_t *taskq_task_types_normalize(const json_t *v, bool expand) {
  json_t *out = json_array();
  if (!out || !v) return out;
  if (json_is_string(v)) {
    const char *s = json_string_value(v);
    size_t count = 0;
    while (*s && count < TASKQ_MAX_TYPES) {
      const char *e = strchr(s, ',');
      size_t n = e ? (size_t)(e - s) : strlen(s);
      types_add_one(out, s, n, expand);
      count++;
      s += n + (e ? 1 : 0);
    }
  } else if (json_is_array(v)) {
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) {
      if (i >= TASKQ_MAX_TYPES) break;
      if (json_is_string(x)) types_add_one(out, json_string_value(x), json_string_length(x), expand);
    }
  }
  return out;
}

