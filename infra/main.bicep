// LLM router on Azure: Flex Consumption function app, Table Storage, Azure OpenAI, Application
// Insights. Every service-to-service call uses the app's user-assigned managed identity; shared keys
// and local auth are disabled everywhere. Deploy with `azd up` (see infra/README.md).

targetScope = 'subscription'

import { modelDeployment } from 'modules/types.bicep'

@minLength(1)
@maxLength(64)
@description('azd environment name: names the resource group and seeds the unique token in resource names.')
param environmentName string

@minLength(1)
@description('Region for the function app, storage and monitoring. It must offer the Flex Consumption plan (az functionapp list-flexconsumption-locations).')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Region for the Azure OpenAI account, where the models below are available; empty = location.')
param openAiLocation string = ''

@description('Resource group to create; empty = rg-<environmentName>.')
param resourceGroupName string = ''

@description('Object id of the deploying user or group; it gets the same data roles as the app (azd sets AZURE_PRINCIPAL_ID). Empty = none.')
param principalId string = ''

@allowed(['User', 'Group', 'ServicePrincipal'])
param principalType string = 'User'

// Same defaults as router.settings.Settings.
@description('Table holding the model catalogue (MODELS_TABLE).')
@minLength(3)
@maxLength(63)
param modelsTableName string = 'models'

@description('Table recording the cost of every call (COSTS_TABLE).')
@minLength(3)
@maxLength(63)
param costsTableName string = 'costs'

@description('Table holding shared model cooldowns (HEALTH_TABLE).')
@minLength(3)
@maxLength(63)
param healthTableName string = 'health'

@description('Table holding daily cost roll-ups for reports (COSTS_ROLLUP_TABLE).')
@minLength(3)
@maxLength(63)
param costsRollupTableName string = 'costsdaily'

@description('Table holding quality samples: shadow comparisons with the baseline (QUALITY_TABLE).')
@minLength(3)
@maxLength(63)
param qualityTableName string = 'quality'

@description('Table holding router keys (salted hashes) and callers\' teams (CALLERS_TABLE); the app only reads it.')
@minLength(3)
@maxLength(63)
param callersTableName string = 'callers'

@description('How callers authenticate (AUTH_MODE): function-key (the host checks the function key), entra, keys, or a comma list. Without function-key the HTTP trigger is anonymous at the host and the app checks every request.')
param authMode string = 'function-key'

@description('entra: the tenant whose tokens are accepted (AUTH_TENANT_ID); empty = this deployment\'s tenant.')
param authTenantId string = ''

@description('entra: accepted token audiences, comma-separated (AUTH_AUDIENCE): the router\'s app registration, api://<app> and/or its client id.')
param authAudience string = ''

@description('Table holding budgets, spend counters and rate-limit counts per caller and team (BUDGETS_TABLE).')
@minLength(3)
@maxLength(63)
param budgetsTableName string = 'budgets'

@description('Azure OpenAI data-plane API version the router calls (AZURE_OPENAI_API_VERSION).')
param openAiApiVersion string = '2024-10-21'

@description('NCRONTAB schedule of the timer function that rolls up closed days\' costs (ROLLUP_SCHEDULE).')
param rollupSchedule string = '0 */15 * * * *'

@description('Azure OpenAI deployments, cheapest first. The postprovision hook writes them to the models table as the router catalogue; every model needs an entry in infra/hooks/model-prices.json.')
@minLength(1)
param deployments modelDeployment[] = [
  {
    name: 'gpt-4.1-nano'
    model: 'gpt-4.1-nano'
    version: '2025-04-14'
    sku: 'GlobalStandard'
    capacity: 50
  }
  {
    name: 'gpt-4.1'
    model: 'gpt-4.1'
    version: '2025-04-14'
    sku: 'GlobalStandard'
    capacity: 20
  }
]

@description('Catalogue model the LLM judge uses (CLASSIFIER_MODEL); empty = the first deployment.')
param classifierModel string = ''

@description('Chat follow-ups stay on the conversation\'s model for its prompt cache (CONVERSATION_AFFINITY).')
param conversationAffinity bool = true

@description('More router settings (fields of router.settings.Settings, e.g. JUDGE_ENABLED: \'false\'), merged over the ones set here.')
param extraAppSettings object = {}

@allowed(['3.11', '3.12'])
param pythonVersion string = '3.11'

@description('Upper bound on scale-out (the Flex Consumption plan accepts 40 to 1000).')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Memory per instance in MB.')
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var functionAppName = 'func-api-${resourceToken}'
// Container names: lowercase letters, digits and hyphens, at most 63 characters.
var deploymentContainerName = 'app-package-${take(functionAppName, 32)}-${take(resourceToken, 7)}'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: empty(resourceGroupName) ? 'rg-${environmentName}' : resourceGroupName
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-api-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
    tableNames: [
      modelsTableName
      callersTableName
      costsTableName
      budgetsTableName
      healthTableName
      costsRollupTableName
      qualityTableName
    ]
  }
}

module openAi 'modules/openai.bicep' = {
  name: 'openai'
  scope: rg
  params: {
    name: 'oai-${resourceToken}'
    location: empty(openAiLocation) ? location : openAiLocation
    tags: tags
    deployments: deployments
  }
}

module functionApp 'modules/function-app.bicep' = {
  name: 'function-app'
  scope: rg
  params: {
    name: functionAppName
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: storage.outputs.deploymentContainerName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    pythonVersion: pythonVersion
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    // What router.settings.Settings reads; values that are not secrets, endpoints and names only.
    appSettings: union(
      {
        AZURE_CLIENT_ID: identity.outputs.clientId
        TABLES_ENDPOINT: storage.outputs.tableEndpoint
        MODELS_TABLE: modelsTableName
        COSTS_TABLE: costsTableName
        HEALTH_TABLE: healthTableName
        COSTS_ROLLUP_TABLE: costsRollupTableName
        QUALITY_TABLE: qualityTableName
        CALLERS_TABLE: callersTableName
        // Who may call (README "Teams and budgets"); function_app.py sets the trigger's auth level from it.
        AUTH_MODE: authMode
        AUTH_TENANT_ID: empty(authTenantId) ? tenant().tenantId : authTenantId
        AUTH_AUDIENCE: authAudience
        BUDGETS_TABLE: budgetsTableName
        AZURE_OPENAI_ENDPOINT: openAi.outputs.endpoint
        // The app's token goes to this deployment's account only (README, Security): its host, as the suffix.
        ALLOWED_ENDPOINT_SUFFIXES: '.${split(openAi.outputs.endpoint, '/')[2]}'
        AZURE_OPENAI_API_VERSION: openAiApiVersion
        CLASSIFIER_MODEL: empty(classifierModel) ? deployments[0].name : classifierModel
        ROLLUP_SCHEDULE: rollupSchedule
        CONVERSATION_AFFINITY: conversationAffinity ? 'true' : 'false'
      },
      extraAppSettings
    )
  }
}

module rbac 'modules/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    openAiAccountName: openAi.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    modelsTableName: modelsTableName
    callersTableName: callersTableName
    dataTableNames: [
      costsTableName
      budgetsTableName
      healthTableName
      costsRollupTableName
      qualityTableName
    ]
    appPrincipalId: identity.outputs.principalId
    userPrincipalId: principalId
    userPrincipalType: principalType
  }
}

// azd stores these in .azure/<env>/.env; the postprovision hook and local runs read them.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output FUNCTION_URL string = functionApp.outputs.uri
output TABLES_ENDPOINT string = storage.outputs.tableEndpoint
output AZURE_OPENAI_ENDPOINT string = openAi.outputs.endpoint
output AZURE_OPENAI_API_VERSION string = openAiApiVersion
output MODELS_TABLE string = modelsTableName
output COSTS_TABLE string = costsTableName
output HEALTH_TABLE string = healthTableName
output COSTS_ROLLUP_TABLE string = costsRollupTableName
output QUALITY_TABLE string = qualityTableName
output CALLERS_TABLE string = callersTableName
output BUDGETS_TABLE string = budgetsTableName
@description('The deployments parameter as JSON; the postprovision hook builds the catalogue from it.')
output AZURE_OPENAI_DEPLOYMENTS string = string(deployments)
