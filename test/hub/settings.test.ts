// Where things are (HF_ENDPOINT, HF_HUB_CACHE, HF_HOME, the token) and which files are chosen, as huggingface_hub does.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { HUB_REPO_ID, hubAccessFromEnv, hubCacheDir, tokenFromEnv } from '../../main/hub/access.js';
import { checkRepoPath, repoFromSnapshotPath } from '../../main/hub/cache.js';
import { fileSelector, globToRegExp, isDataFile, isModelFile, isSplitFile } from '../../main/hub/select.js';
import { tempDir } from '../support/engine.js';

describe('environment', () => {
  it('finds the cache as huggingface_hub does: HF_HUB_CACHE, then HF_HOME/hub, then XDG_CACHE_HOME, then ~/.cache', () => {
    expect(hubCacheDir({ HF_HUB_CACHE: '/c', HF_HOME: '/h' })).toBe('/c');
    expect(hubCacheDir({ HF_HOME: '/h', XDG_CACHE_HOME: '/x' })).toBe(path.join('/h', 'hub'));
    expect(hubCacheDir({ XDG_CACHE_HOME: '/x' })).toBe(path.join('/x', 'huggingface', 'hub'));
    expect(hubCacheDir({})).toBe(path.join(os.homedir(), '.cache', 'huggingface', 'hub'));
  });

  it('takes the token from HF_TOKEN, else from the file huggingface-cli login writes', () => {
    const home = tempDir('hub-token');
    expect(tokenFromEnv({ HF_HOME: home })).toBeUndefined();
    fs.writeFileSync(path.join(home, 'token'), 'hf_from_file\n');
    expect(tokenFromEnv({ HF_HOME: home })).toBe('hf_from_file');
    expect(tokenFromEnv({ HF_HOME: home, HF_TOKEN: 'hf_from_env' })).toBe('hf_from_env');
  });

  it('uses HF_ENDPOINT for the Hub and HF_HUB_OFFLINE for offline mode', () => {
    expect(hubAccessFromEnv({ HF_HOME: '/h' })).toMatchObject({
      hubUrl: 'https://huggingface.co',
      offline: false,
      cacheDir: path.join('/h', 'hub'),
    });
    expect(
      hubAccessFromEnv({ HF_ENDPOINT: 'http://127.0.0.1:8080/', HF_HUB_OFFLINE: '1', HF_HOME: '/h' }),
    ).toMatchObject({ hubUrl: 'http://127.0.0.1:8080', offline: true });
  });
});

describe('file choice', () => {
  it('takes what a model folder needs and none of the duplicate exports', () => {
    for (const f of [
      'config.json',
      'generation_config.json',
      'model.safetensors',
      'model-00001-of-00002.safetensors',
      'model.safetensors.index.json',
      'tokenizer.json',
      'tokenizer_config.json',
      'special_tokens_map.json',
      'chat_template.jinja',
    ])
      expect(isModelFile(f), f).toBe(true);
    for (const f of [
      'consolidated.safetensors',
      'pytorch_model.bin',
      'original/consolidated.00.pth',
      'onnx/model.onnx',
      'model.gguf',
      'README.md',
      'subfolder/config.json',
    ])
      expect(isModelFile(f), f).toBe(false);
  });

  it('takes data files, not metadata, and finds split files by the naming conventions', () => {
    expect(['a.jsonl', 'b.json', 'c.csv', 'd.tsv', 'data/e.parquet'].every(isDataFile)).toBe(true);
    expect(['README.md', 'dataset_info.json', 'x/dataset_dict.json', 'notes.txt'].some(isDataFile)).toBe(false);
    for (const f of ['train.jsonl', 'data/train-00000-of-00002.parquet', 'train/part-0.csv', 'sft_train.json'])
      expect(isSplitFile(f, 'train'), f).toBe(true);
    for (const f of ['pretrain.jsonl', 'data/test-00000-of-00001.parquet', 'trainer.json'])
      expect(isSplitFile(f, 'train'), f).toBe(false);
  });

  it('reads --include patterns as fnmatch does (* spans folders; dir/ means all under it)', () => {
    expect(globToRegExp('*.json').test('sub/x.json')).toBe(true);
    expect(globToRegExp('model-0000[12]-of-*.safetensors').test('model-00002-of-00003.safetensors')).toBe(true);
    expect(globToRegExp('model-0000[!12]-of-*.safetensors').test('model-00002-of-00003.safetensors')).toBe(false);
    expect(globToRegExp('data/').test('data/train/a.parquet')).toBe(true);
    expect(globToRegExp('a.json').test('axjson')).toBe(false);
    expect(globToRegExp('?.csv').test('ab.csv')).toBe(false);
    const select = fileSelector({ type: 'dataset', include: ['data/*'], split: 'test' });
    expect(['data/test-0.parquet', 'data/train-0.parquet', 'test.jsonl'].filter(select)).toEqual([
      'data/test-0.parquet',
    ]);
  });
});

describe('cache paths', () => {
  it('refuses repo paths that would leave the cache', () => {
    const repo = { type: 'model' as const, name: 'TestOrg/x' };
    for (const bad of ['../x', 'a/../../x', '/etc/passwd', 'C:\\x', 'a//b', '', './x', 'a/.', 'a\nb', 'a\0b']) {
      expect(() => checkRepoPath(repo, bad), bad).toThrow(
        /^TestOrg\/x: the Hub listed an unsafe file path ".*"; refusing/,
      );
    }
    expect(() => checkRepoPath(repo, 'data/train.jsonl')).not.toThrow();
  });

  it('takes real repo ids and refuses ids with `.` or `..` parts, hidden names or `--`', () => {
    const real = ['HuggingFaceTB/SmolLM2-135M', 'Qwen/Qwen2.5-0.5B', 'unsloth/llama-3-8b-bnb-4bit', 'a/b', 'org_1/x_'];
    for (const id of real) expect(HUB_REPO_ID.test(id), id).toBe(true);
    const unsafe = [
      '../..',
      'a/..',
      './x',
      '..',
      'a/../b',
      'x/.',
      'x/.bashrc',
      '.x/y',
      'a..b/c',
      'a/b--c',
      'a/b-',
      'a/b/c',
    ];
    for (const id of [...unsafe, 'gpt2']) expect(HUB_REPO_ID.test(id), id).toBe(false);
  });

  it('recognises a model folder inside a Hugging Face cache as its Hub repo', () => {
    const sha = 'a'.repeat(40);
    expect(
      repoFromSnapshotPath(`/home/u/.cache/huggingface/hub/models--HuggingFaceTB--SmolLM2-135M/snapshots/${sha}`),
    ).toEqual({ name: 'HuggingFaceTB/SmolLM2-135M', commit: sha });
    expect(repoFromSnapshotPath(`C:\\Users\\u\\hub\\models--Qwen--Qwen2.5-0.5B-Instruct\\snapshots\\${sha}\\`)).toEqual(
      { name: 'Qwen/Qwen2.5-0.5B-Instruct', commit: sha },
    );
    expect(repoFromSnapshotPath('/home/u/models/my-model')).toBeNull();
  });
});
